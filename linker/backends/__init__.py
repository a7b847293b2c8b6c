"""Candidate generation behind one interface: a base class owning the shared steps and
backends supplying their kernel (``cpu``; ``dask`` and ``gpu`` with their optional packages),
chosen by name with :func:`get_backend`."""

from .base import Backend
from .registry import (
    BACKENDS,
    BackendUnavailableError,
    available_backends,
    candidate_pairs,
    get_backend,
)
from .types import Candidates, dice_scores

__all__ = ["BACKENDS", "Backend", "BackendUnavailableError", "Candidates", "available_backends",
           "candidate_pairs", "dice_scores", "get_backend"]
