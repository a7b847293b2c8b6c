"""Bit positions of a token in the Bloom filter, for each hash construction clkhash offers.

* doubleHash (Schnell et al. 2011): g_i = (h1 + i*h2) mod L with h1 = HMAC-SHA1 and
  h2 = HMAC-MD5 of the token, each keyed with one of the feature's two keys.
  With ``prevent_singularity`` an h2 of 0 is re-drawn by appending chr(0), chr(1), ...
  to the token until it is not.
* blakeHash: keyed BLAKE2b with salt ``str(j)`` gives 32 little-endian uint16 per digest;
  the i-th position is the i-th uint16 mod L.

Positions for k bits are a prefix of the positions for more bits, so one cached sequence per
token serves every k (``token_table`` and ``ngram_kernel`` keep them).
"""

from __future__ import annotations

import hmac
from hashlib import blake2b, md5, sha1

import numpy as np

__all__ = ["double_hash_bases", "blake_positions"]

_SHORTS_PER_DIGEST = 32


def double_hash_bases(
    token: bytes, key_sha1: bytes, key_md5: bytes, length: int, prevent_singularity: bool
) -> tuple[int, int]:
    """(h1, h2), both already reduced mod ``length``."""
    h1 = int.from_bytes(hmac.digest(key_sha1, token, sha1), "big") % length
    h2 = int.from_bytes(hmac.digest(key_md5, token, md5), "big") % length
    if prevent_singularity:
        counter = 0
        while h2 == 0:
            salted = token + chr(counter).encode()
            h2 = int.from_bytes(hmac.digest(key_md5, salted, md5), "big") % length
            counter += 1
    return h1, h2


def blake_positions(token: bytes, key: bytes, length: int, count: int) -> np.ndarray:
    """The first ``count`` BLAKE2b positions of a token."""
    digests = (count + _SHORTS_PER_DIGEST - 1) // _SHORTS_PER_DIGEST
    raw = b"".join(
        blake2b(token, key=key, salt=str(j).encode()).digest() for j in range(digests)
    )
    return (np.frombuffer(raw, dtype="<u2")[:count] % length).astype(np.int64)
