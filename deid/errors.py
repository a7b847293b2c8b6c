"""Exceptions of the de-identifier, all under :class:`DeidError`.

Messages name the file, element and rule that failed, never a value: DICOM headers hold
identifiers and error text ends up in logs.
"""

from __future__ import annotations

__all__ = ["DeidError", "ProfileError", "UnreadableFileError"]


class DeidError(Exception):
    """Base class of every error the de-identifier raises on purpose."""


class ProfileError(DeidError):
    """The packaged profile table or private tag knowledge base cannot be parsed."""


class UnreadableFileError(DeidError):
    """A DICOM file is corrupt or truncated; it is quarantined, never half-written."""
