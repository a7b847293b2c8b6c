"""Per-feature table of distinct tokens and their bit positions.

In a population the same (feature, token) pairs repeat endlessly, and a token's positions
depend only on the feature's keys and the token, so each distinct token is hashed once and
kept here. Positions for a batch of token occurrences are then gathered with numpy.
"""

from __future__ import annotations

import numpy as np

from .hashing import blake_positions, double_hash_bases
from .schema_model import HashConfig

__all__ = ["TokenTable"]

_SHORTS_PER_DIGEST = 32


class TokenTable:
    """Token text -> id, and id -> the data that generates its positions.

    doubleHash keeps (h1, h2) per token and computes positions arithmetically; blakeHash
    keeps the first ``width`` positions per token and widens on demand.
    """

    def __init__(self, config: HashConfig, keys: tuple[bytes, bytes], length: int,
                 encoding: str) -> None:
        self.config = config
        self.keys = keys
        self.length = length
        self.encoding = encoding
        self.clear()

    def __len__(self) -> int:
        return len(self._texts)

    def clear(self) -> None:
        """Forget every token (bounds memory; ids restart at 0)."""
        self.ids: dict[str, int] = {}
        self._texts: list[bytes] = []
        self._h1 = np.zeros(0, dtype=np.int64)
        self._h2 = np.zeros(0, dtype=np.int64)
        self._blake = np.zeros((0, 0), dtype=np.int32)
        self._pending_h: list[tuple[int, int]] = []

    def id_for(self, text: str) -> int:
        """The id of a token, registering (and hashing) it if it is new."""
        token_id = self.ids.get(text)
        if token_id is None:
            token_id = len(self._texts)
            self.ids[text] = token_id
            token = text.encode(self.encoding)
            self._texts.append(token)
            if self.config.kind == "doubleHash":
                self._pending_h.append(double_hash_bases(
                    token, self.keys[0], self.keys[1], self.length,
                    self.config.prevent_singularity))
        return token_id

    def _flush(self) -> None:
        if self._pending_h:
            pending = np.array(self._pending_h, dtype=np.int64).reshape(-1, 2)
            self._h1 = np.concatenate([self._h1, pending[:, 0]])
            self._h2 = np.concatenate([self._h2, pending[:, 1]])
            self._pending_h = []

    def _blake_table(self, width: int) -> np.ndarray:
        """Positions table with at least ``width`` columns covering every registered token."""
        rows, have = self._blake.shape
        need_width = max(have, -(-width // _SHORTS_PER_DIGEST) * _SHORTS_PER_DIGEST)
        if rows == len(self._texts) and need_width == have:
            return self._blake
        table = np.zeros((len(self._texts), need_width), dtype=np.int32)
        table[:rows, :have] = self._blake
        key = self.keys[0]
        for token_id, token in enumerate(self._texts):
            start = have if token_id < rows else 0
            if start < need_width:
                table[token_id, start:need_width] = blake_positions(
                    token, key, self.length, need_width)[start:]
        self._blake = table
        return table

    def positions(self, token_ids: np.ndarray, ordinals: np.ndarray) -> np.ndarray:
        """Bit position number ``ordinals[j]`` of token ``token_ids[j]``, for every j."""
        if self.config.kind == "doubleHash":
            self._flush()
            return (self._h1[token_ids] + ordinals * self._h2[token_ids]) % self.length
        width = int(ordinals.max()) + 1 if len(ordinals) else 0
        return self._blake_table(width)[token_ids, ordinals].astype(np.int64)
