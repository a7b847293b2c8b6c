"""OpenToken 1.12.5's encrypted mode: AES-256-GCM over each hash-only token.

Layout, from its ``EncryptTokenTransformer``/``DecryptTokenTransformer``: the plaintext is the
UTF-8 of the base64 hash-only token; the token written is base64(IV ‖ ciphertext ‖ tag) with
a fresh random 12-byte IV per token and the 16-byte tag last, no associated data; the key is
the 32-character ``--encryptionkey`` string, one byte per character (Latin-1). A blank token
(64 zeros) is never encrypted and is never decrypted. Because the IV is random, encrypting
twice never gives the same bytes: outputs are compared after decryption, not byte for byte.
"""

from __future__ import annotations

import base64
import binascii
import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import InputError, SecretError
from .engine import BLANK

__all__ = ["KEY_CHARS", "IV_BYTES", "TAG_BYTES", "encryption_key", "encrypt_tokens",
           "decrypt_tokens"]

KEY_CHARS = 32
IV_BYTES = 12
TAG_BYTES = 16


def encryption_key(secret: bytes) -> bytes:
    """AES key bytes from the key as read (file bytes or UTF-8 environment value).

    OpenToken takes the key as a 32-character string and uses one byte per character, so a
    key must be 32 characters of Latin-1; anything else is refused rather than padded.

    Raises:
        SecretError: not UTF-8 text, not 32 characters, or a character beyond Latin-1.
    """
    try:
        text = secret.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SecretError("the encryption key is not UTF-8 text") from e
    if len(text) != KEY_CHARS:
        raise SecretError(f"the encryption key must be {KEY_CHARS} characters, as OpenToken's "
                          f"(it has {len(text)}; a trailing line break counts); make one with "
                          f"`pprl keygen --opentoken-encryption FILE`")
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError as e:
        raise SecretError("the encryption key has characters beyond Latin-1, which OpenToken "
                          "cannot use as key bytes") from e


def encrypt_tokens(tokens: pa.Array, key: bytes) -> pa.Array:
    """Each hash-only token encrypted with its own random IV; blank tokens stay blank.
    The IVs come from one ``os.urandom`` call and the messages are base64-encoded together
    (they all have the same length, a multiple of 3, so no padding falls between them)."""
    tokens = tokens.cast(pa.large_string())
    wanted = pc.not_equal(tokens, BLANK)
    plain = tokens.filter(wanted).to_pylist()
    aead = AESGCM(key)
    ivs = os.urandom(IV_BYTES * len(plain))
    messages = [ivs[n * IV_BYTES:(n + 1) * IV_BYTES]
                + aead.encrypt(ivs[n * IV_BYTES:(n + 1) * IV_BYTES], token.encode(), None)
                for n, token in enumerate(plain)]
    sizes = {len(message) for message in messages}
    if len(sizes) == 1 and (size := sizes.pop()) % 3 == 0:
        text = base64.b64encode(b"".join(messages))
        width = size // 3 * 4
        encrypted = pa.Array.from_buffers(
            pa.large_string(), len(messages),
            [None, pa.py_buffer(np.arange(len(messages) + 1, dtype=np.int64) * width),
             pa.py_buffer(text)])
    else:
        encrypted = pa.array([base64.b64encode(m).decode("ascii") for m in messages],
                             pa.large_string())
    return pc.replace_with_mask(tokens, wanted, encrypted)


def decrypt_tokens(tokens: list[str], key: bytes, source: str,
                   first_row: int = 1) -> list[str]:
    """The hash-only tokens behind OpenToken's encrypted ones; blank tokens stay blank.

    Raises:
        InputError: a token that is not base64 of IV ‖ ciphertext ‖ tag, or whose tag does not
            verify under this key (wrong key or altered token), named by file, row and column.
    """
    aead = AESGCM(key)
    out = []
    for row, token in enumerate(tokens, start=first_row):
        if token == "" or token == BLANK:
            out.append(token)
            continue
        try:
            message = base64.b64decode(token, validate=True)
            if len(message) <= IV_BYTES + TAG_BYTES:
                raise ValueError("too short")
            plain = aead.decrypt(message[:IV_BYTES], message[IV_BYTES:], None)
            out.append(plain.decode("utf-8"))
        except (binascii.Error, ValueError) as e:
            raise InputError(f"{source}: row {row:,}, column Token: not an OpenToken encrypted "
                             f"token (base64 of IV, ciphertext and tag)") from e
        except InvalidTag as e:
            raise InputError(f"{source}: row {row:,}, column Token: does not decrypt with this "
                             f"key (wrong key, or the token was altered)") from e
    return out
