"""The linkage secret and the per-feature keys derived from it.

The secret is read from a file or an environment variable, never from the command line, and is
never logged. Keys are derived exactly as clkhash does: one HKDF output of
``2 x features x keySize`` bytes, cut into two keys per feature in schema order (ignored
features included), the first for SHA-1 or BLAKE2b, the second for MD5.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import SecretError
from .schema_model import KdfConfig, Schema

__all__ = ["read_secret", "derive_feature_keys"]

_HKDF_HASHES = {"SHA256": hashes.SHA256, "SHA512": hashes.SHA512}


def read_secret(*, file: str | Path | None = None, env: str | None = None,
                what: str = "linkage secret", option: str = "--secret") -> bytes:
    """Read a secret from exactly one of a file or an environment variable.

    A file's bytes are the secret, byte for byte (a trailing newline is part of it, as it
    is for clkhash given the same bytes). An environment variable is taken as UTF-8.
    ``what`` and ``option`` name the secret and its command-line options in messages (a
    site's DICOM key is read the same way as the linkage secret).

    Raises:
        SecretError: neither or both sources given, source missing, unreadable or empty.
    """
    if (file is None) == (env is None):
        raise SecretError(f"give the {what} with exactly one of {option}-file or "
                          f"{option}-env (never on the command line)")
    if file is not None:
        try:
            secret = Path(file).read_bytes()
        except FileNotFoundError as e:
            raise SecretError(f"{what} file {file} does not exist") from e
        except OSError as e:
            raise SecretError(f"{what} file {file} cannot be read: {e.strerror}") from e
        if not secret:
            raise SecretError(f"{what} file {file} is empty")
        return secret
    assert env is not None
    value = os.environ.get(env)
    if value is None:
        raise SecretError(f"environment variable {env} is not set")
    if not value:
        raise SecretError(f"environment variable {env} is empty")
    return value.encode("utf-8")


def _hkdf(secret: bytes, kdf: KdfConfig, length: int) -> bytes:
    return HKDF(
        algorithm=_HKDF_HASHES[kdf.hash_name](),
        length=length,
        salt=kdf.salt,
        info=kdf.info,
    ).derive(secret)


def derive_feature_keys(secret: bytes, schema: Schema) -> list[tuple[bytes, bytes]]:
    """Two keys per schema feature, in schema order."""
    if not secret:
        raise SecretError("the linkage secret is empty")
    size = schema.kdf.key_size
    material = _hkdf(secret, schema.kdf, 2 * size * len(schema.features))
    return [
        (material[2 * i * size:(2 * i + 1) * size], material[(2 * i + 1) * size:(2 * i + 2) * size])
        for i in range(len(schema.features))
    ]
