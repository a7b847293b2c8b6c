"""Everything the site key decides: pseudonyms, UIDs, date offsets, hashed private values.

The site key is the provider's own and never leaves the site; it is distinct from the linkage
secret, so the linkage unit, which never holds a site key, cannot invert any of these. Each use
gets its own HMAC-SHA256 subkey, so a UID and a pseudonym of the same text never coincide.
"""

from __future__ import annotations

import hashlib
import hmac

from tokenizer.keys import MAX_SHIFT_DAYS, MIN_SHIFT_DAYS, keyed_day_offset, keyed_uid

__all__ = ["SiteKeys", "MIN_SHIFT_DAYS", "MAX_SHIFT_DAYS"]

# A file's study and series UIDs repeat across its neighbours; recent ones are worth keeping.
_UID_CACHE_SIZE = 1 << 16


class SiteKeys:
    """Keyed, deterministic replacements: the same input gives the same output across runs,
    files and processes."""

    def __init__(self, site_key: bytes) -> None:
        if not site_key:
            raise ValueError("the site key is empty")
        self._pseudonym = self._subkey(site_key, b"pseudonym")
        self._uid = self._subkey(site_key, b"uid")
        self._dates = self._subkey(site_key, b"date-shift")
        self._value = self._subkey(site_key, b"private-value")
        self._uid_cache: dict[str, str] = {}

    @staticmethod
    def _subkey(site_key: bytes, label: bytes) -> bytes:
        return hmac.new(site_key, b"pprl-deid/1 " + label, hashlib.sha256).digest()

    def pseudonym(self, issuer: str, patient_id: str) -> str:
        """The patient's site pseudonym: 32 hex digits keyed on issuer and MRN, so the same
        MRN of two issuers stays two patients."""
        message = issuer.encode("utf-8") + b"\x00" + patient_id.encode("utf-8")
        return hmac.new(self._pseudonym, message, hashlib.sha256).hexdigest()[:32].upper()

    def uid(self, original: str) -> str:
        """A UID in the 2.25 (UUID-derived) form: 128 keyed bits as a decimal, at most 44
        characters, no leading zero."""
        mapped = self._uid_cache.get(original)
        if mapped is None:
            mapped = keyed_uid(self._uid, original)
            if len(self._uid_cache) >= _UID_CACHE_SIZE:  # bounded: a site has millions
                self._uid_cache.clear()
            self._uid_cache[original] = mapped
        return mapped

    def day_offset(self, pseudonym: str) -> int:
        """Days to add to every date of this patient (negative)."""
        return keyed_day_offset(hmac.new(self._dates, pseudonym.encode("ascii"),
                                         hashlib.sha256).digest())

    def hashed_value(self, value: str, max_length: int) -> str:
        """A consistent stand-in for an identifying private value (disposition h)."""
        digest = hmac.new(self._value, value.encode("utf-8"), hashlib.sha256).hexdigest()
        return digest[:max(1, min(max_length, len(digest)))].upper()
