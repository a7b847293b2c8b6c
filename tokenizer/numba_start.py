"""Starting numba quickly, for the tokenizer's and the linker's compiled kernels.

numba's first compiled call in a process loads its registries, and one of them imports
scipy.linalg (about a fifth of a second, with scipy's array-API layer) only to learn whether
compiled ``np.dot`` may call BLAS; importing numba itself imports scipy to check its version.
None of the project's kernels calls BLAS, so that import and that first call are made with
scipy refused in the calling thread when nothing has imported it yet: numba then takes BLAS as
absent (compiled ``np.dot`` is unavailable in that process); numpy and scipy themselves are
unaffected, and other threads, and this one afterwards, import scipy as usual.
"""

from __future__ import annotations

import functools
import importlib.abc
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib.machinery import ModuleSpec
from types import ModuleType

__all__ = ["scipy_refused", "start_numba"]


class _NoScipyInThisThread(importlib.abc.MetaPathFinder):
    """Refuses scipy and its sub-packages in the thread that created it only."""

    def __init__(self) -> None:
        self.thread = threading.get_ident()

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname.split(".")[0] == "scipy" and threading.get_ident() == self.thread:
            raise ImportError("scipy is not imported while numba starts")
        return None


@contextmanager
def scipy_refused() -> Iterator[None]:
    """Within the block, this thread cannot import scipy (what is imported already stays)."""
    finder = _NoScipyInThisThread()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


@functools.cache
def start_numba() -> None:
    """Import numba and make its first compiled call here, scipy refused (once a process; a
    kernel called first on a thread pool would pay for scipy.linalg there)."""
    with scipy_refused():
        from . import numba_first
        numba_first.nothing()
