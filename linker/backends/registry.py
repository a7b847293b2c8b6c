"""Backends by name: a plain dict, each entry naming its module and the packages it needs, so
that ``import linker`` never imports Dask or CuPy and asking for a missing one says what to
install."""

from __future__ import annotations

import importlib
import importlib.util
import logging
from dataclasses import dataclass
from typing import Any

from ..blocking import LshBlocking
from ..clkset import ClkSet
from .base import Backend
from .types import Candidates, ProgressCallback

__all__ = ["BACKENDS", "BackendUnavailableError", "available_backends", "candidate_pairs",
           "get_backend"]

log = logging.getLogger(__name__)


class BackendUnavailableError(ImportError):
    """A backend whose packages (or device) this installation lacks."""


@dataclass(frozen=True)
class _Entry:
    module: str
    cls: str
    packages: tuple[str, ...]
    extra: str | None


_REGISTRY = {
    "cpu": _Entry("linker.backends.cpu", "CpuBackend", (), None),
    "dask": _Entry("linker.backends.dask", "DaskBackend", ("dask", "distributed"), "dask"),
    "gpu": _Entry("linker.backends.gpu", "GpuBackend", ("cupy",), "gpu"),
}
BACKENDS = tuple(_REGISTRY)


def _missing(entry: _Entry) -> list[str]:
    return [p for p in entry.packages if importlib.util.find_spec(p) is None]


def available_backends() -> list[str]:
    """Names of the backends whose packages are installed (a GPU backend may still find no
    device when it starts)."""
    return [name for name, entry in _REGISTRY.items() if not _missing(entry)]


def get_backend(name: str, **options: Any) -> Backend:
    """The backend ``name`` built with ``options`` (its constructor's arguments).

    Raises:
        ValueError: no backend has that name.
        BackendUnavailableError: its packages are not installed.
    """
    entry = _REGISTRY.get(name)
    if entry is None:
        raise ValueError(f"unknown backend {name!r}: choose from {', '.join(BACKENDS)}")
    missing = _missing(entry)
    if missing:
        raise BackendUnavailableError(
            f"backend {name!r} needs {', '.join(missing)}, which this installation lacks: "
            f"pip install 'pprl-imaging[{entry.extra}]'")
    backend: Backend = getattr(importlib.import_module(entry.module), entry.cls)(**options)
    log.info("linking with backend %s", name)
    return backend


def candidate_pairs(a: ClkSet, b: ClkSet | None, threshold: float, *,
                    backend: Backend | None = None, blocking: LshBlocking | None = None,
                    progress: ProgressCallback | None = None) -> Candidates:
    """``backend.candidates(...)``, on the CPU backend with one thread by default."""
    chosen = backend if backend is not None else get_backend("cpu")
    return chosen.candidates(a, b, threshold, blocking=blocking, progress=progress)
