"""API tokens: ``pprl_<id>_<secret>``, 256 random bits of secret, shown once, stored hashed.

The id (not secret) finds the row and names the actor in the audit log; the secret's SHA-256
is compared in constant time. A hash without salt or stretching is right here: the secret is
256 random bits, not a password, so it cannot be guessed from its hash.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

__all__ = ["IssuedToken", "issue_token", "split_token", "secret_matches", "unusable_reason"]

_PATTERN = re.compile(r"pprl_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
# compared against when the id is unknown, so an unknown id costs the same as a wrong secret
_DUMMY_HASH = hashlib.sha256(b"no such token").hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    id: str
    token: str
    secret_hash: str


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def issue_token() -> IssuedToken:
    token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    return IssuedToken(token_id, f"pprl_{token_id}_{secret}", _hash(secret))


def split_token(token: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed token, else None."""
    match = _PATTERN.fullmatch(token.strip())
    return (match.group(1), match.group(2)) if match else None


def secret_matches(secret: str, stored_hash: str | None) -> bool:
    """Constant-time comparison; an unknown token (no stored hash) never matches."""
    equal = hmac.compare_digest(_hash(secret), stored_hash or _DUMMY_HASH)
    return equal and stored_hash is not None


def unusable_reason(revoked_at: float | None, expires_at: float | None,
                    now: float) -> str | None:
    """Why a token that matches cannot be used (revoked, expired), or None."""
    if revoked_at is not None:
        return "this API token was revoked"
    if expires_at is not None and expires_at <= now:
        return "this API token has expired"
    return None
