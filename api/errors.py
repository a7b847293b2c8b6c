"""Domain errors of the service layer; the app turns each into its HTTP status.

Services raise these instead of ``HTTPException`` so that they know nothing of HTTP; messages
name projects, parties, runs and fields, never a token, an identifier or a server path.
"""

from __future__ import annotations

__all__ = ["ServiceError", "NotFound", "Forbidden", "Unauthorized", "Conflict", "Invalid",
           "TooLarge", "TooMany", "Busy", "RequestTimeout", "UnsupportedMedia"]


class ServiceError(Exception):
    """Base of the service's domain errors; ``status`` is the HTTP status it maps to."""

    status = 400
    headers: dict[str, str] | None = None

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if headers is not None:
            self.headers = headers


class Unauthorized(ServiceError):
    status = 401
    headers = {"WWW-Authenticate": "Bearer"}


class Forbidden(ServiceError):
    """``actor``, ``role``, ``project_id``: who was refused, for the audit log;
    ``own_project``: the project the actor's token belongs to (None: an administrator's)."""

    status = 403

    def __init__(self, message: str, *, actor: str | None = None, role: str | None = None,
                 project_id: str | None = None, own_project: str | None = None) -> None:
        super().__init__(message)
        self.actor, self.role, self.project_id = actor, role, project_id
        self.own_project = own_project


class NotFound(ServiceError):
    status = 404


class RequestTimeout(ServiceError):
    status = 408


class Conflict(ServiceError):
    status = 409


class TooLarge(ServiceError):
    status = 413


class UnsupportedMedia(ServiceError):
    status = 415


class Invalid(ServiceError):
    status = 422


class TooMany(ServiceError):
    status = 429


class Busy(ServiceError):
    """The database is locked by another writer for longer than the wait allows."""

    status = 503
