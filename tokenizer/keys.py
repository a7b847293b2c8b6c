"""The linkage secret, the per-feature keys derived from it, and key check values.

The secret is read from a file or an environment variable, never from the command line, and is
never logged. Keys are derived exactly as clkhash does: one HKDF output of
``2 x features x keySize`` bytes, cut into two keys per feature in schema order (ignored
features included), the first for SHA-1 or BLAKE2b, the second for MD5.

A key check value is a short public fingerprint of a secret, derived through its own HKDF
context (its own salt and info), so it shares no derivation with any CLK key: knowing it does
not help compute a CLK, but two providers whose secrets differ by one byte (a trailing newline
in one file) get different values, and files made with them are refused instead of giving zero
links.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets as random_source
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import SecretError
from .schema_model import KdfConfig, Schema

__all__ = ["MIN_SECRET_BYTES", "KEYGEN_BYTES", "MIN_SHIFT_DAYS", "MAX_SHIFT_DAYS",
           "read_secret", "check_secret_length", "keyed_uid", "keyed_day_offset",
           "key_check_value", "write_new_key", "derive_feature_keys"]

log = logging.getLogger(__name__)

# 128 bits: below this a key check value (or a CLK) invites guessing the secret offline.
MIN_SECRET_BYTES = 16
# `pprl keygen` writes 256 random bits as 64 hex digits (text, so it can be passed on safely).
KEYGEN_BYTES = 32
_HKDF_HASHES = {"SHA256": hashes.SHA256, "SHA512": hashes.SHA512}
_KCV_SALT = b"pprl-imaging key check value"
_KCV_BYTES = 8


def read_secret(*, file: str | Path | None = None, env: str | None = None,
                what: str = "linkage secret", option: str = "--secret") -> bytes:
    """Read a secret from exactly one of a file or an environment variable.

    A file's bytes are the secret, byte for byte (a trailing newline is part of it, as it
    is for clkhash given the same bytes; a warning says so). An environment variable is taken
    as UTF-8. ``what`` and ``option`` name the secret and its command-line options in messages
    (a site's DICOM key is read the same way as the linkage secret).

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
        if secret.endswith((b"\n", b"\r")):
            log.warning("%s file %s ends with a line break, which is part of the %s: every "
                        "provider's file must hold the same bytes (`pprl keygen` writes none)",
                        what, file, what)
        return secret
    assert env is not None
    value = os.environ.get(env)
    if value is None:
        raise SecretError(f"environment variable {env} is not set")
    if not value:
        raise SecretError(f"environment variable {env} is empty")
    return value.encode("utf-8")


def check_secret_length(secret: bytes, what: str = "linkage secret", *,
                        allow_short: bool = False) -> None:
    """Refuse a secret shorter than :data:`MIN_SECRET_BYTES`, unless ``allow_short`` (to
    reproduce other tools' vectors: clkhash's own examples use 1-byte secrets), which warns.

    Raises:
        SecretError: the secret is short and ``allow_short`` is not set.
    """
    if len(secret) >= MIN_SECRET_BYTES:
        return
    message = (f"the {what} is {len(secret)} bytes; at least {MIN_SECRET_BYTES} are needed "
               f"(make one with `pprl keygen FILE`)")
    if not allow_short:
        raise SecretError(message + "; --allow-short-secret accepts it, to reproduce other "
                                    "tools' test vectors only")
    log.warning("%s, accepted because of --allow-short-secret: use it only for test vectors",
                message)


def key_check_value(secret: bytes, purpose: str = "linkage secret") -> str:
    """16 hex digits that identify ``secret`` without revealing anything that helps compute a
    CLK (own HKDF salt and info per ``purpose``). Safe to publish and to store in files."""
    if not secret:
        raise SecretError(f"the {purpose} is empty")
    derived = HKDF(algorithm=hashes.SHA256(), length=_KCV_BYTES, salt=_KCV_SALT,
                   info=b"pprl-kcv/1 " + purpose.encode("ascii")).derive(secret)
    return derived.hex()


def keyed_uid(key: bytes, original: str) -> str:
    """A UID in the 2.25 (UUID-derived) form: 128 bits of HMAC-SHA256(key, original) as a
    decimal, at most 44 characters. The same UID and key always give the same result, so
    references between objects survive; without the key nothing ties it to the original.
    Used by `pprl deid` (site key) and by cohort exports and their relabelled images (each
    request's key), which must agree to the character."""
    digest = hmac.new(key, original.encode("ascii", "replace"), hashlib.sha256).digest()
    return "2.25." + str(int.from_bytes(digest[:16], "big"))


# Dates move back by 1 to 10 years: a whole number of days, so times of day and intervals
# within a person survive, and a birth year cannot be read off a shifted date.
MIN_SHIFT_DAYS = 365
MAX_SHIFT_DAYS = 3652


def keyed_day_offset(digest: bytes) -> int:
    """Days to add to every date of one person (negative), from a keyed digest of them:
    `pprl deid` (site key) and cohort exports (each request's key) shift alike."""
    span = MAX_SHIFT_DAYS - MIN_SHIFT_DAYS + 1
    return -(MIN_SHIFT_DAYS + int.from_bytes(digest[:8], "big") % span)


def write_new_key(path: str | Path, opentoken_encryption: bool = False) -> None:
    """Write a new random key (64 hex digits, no line break) readable by its owner only;
    never overwrite an existing file. ``opentoken_encryption``: instead, the 32 characters an
    OpenToken encryption key is (URL-safe base64 of 24 random bytes: 192 bits).

    Raises:
        SecretError: the file exists or cannot be created.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as e:
        raise SecretError(f"{path} already exists; a key is never overwritten (remove it "
                          f"first if you really mean to replace it)") from e
    except OSError as e:
        raise SecretError(f"{path} cannot be created: {e.strerror}") from e
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(random_source.token_urlsafe(24) if opentoken_encryption
                     else random_source.token_hex(KEYGEN_BYTES))
    os.chmod(path, 0o600)  # whatever the umask


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
