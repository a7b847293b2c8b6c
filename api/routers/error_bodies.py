"""The bodies of the service's error answers, for the OpenAPI description: each operation
that takes a token documents 401, 403, 404, 422, 429 and 503 with the body a client really
gets (a generated client would otherwise expect FastAPI's validation list for every 422, where
the service's own rules answer with a message)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

__all__ = ["ErrorBody", "COMMON_ERRORS", "error_response"]


class Problem(BaseModel):
    """One field of a request the schema refuses."""

    loc: list[str | int] = Field(description="Where: body, path or query, then the field.")
    msg: str = Field(description="The rule it breaks (never the value given).")
    type: str | None = None


class ErrorBody(BaseModel):
    detail: str | list[Problem] = Field(description=(
        "What is wrong: a message naming the project, party, run or field and the rule "
        "(never a token or an identifier), or, for a request the schema refuses (422), one "
        "problem per field."))


def error_response(description: str) -> dict[str, Any]:
    """An error status's OpenAPI entry: its meaning and ``ErrorBody``."""
    return {"model": ErrorBody, "description": description}


COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    401: error_response("No token, or one that is malformed, unknown, revoked or expired "
                        "(WWW-Authenticate: Bearer)"),
    403: error_response("The token's role or party may not do this (audited)"),
    404: error_response("No such project, party, run, request or token"),
    422: error_response("A field the schema refuses (one problem per field) or a request a "
                        "rule of the service refuses (a message)"),
    429: error_response("Too many failed authentications from this client or for this "
                        "token (Retry-After)"),
    503: error_response("The database is busy (Retry-After)"),
}
