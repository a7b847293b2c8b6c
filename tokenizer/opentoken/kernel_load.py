"""Loading the token hash kernel quickly, e.g. in a thread while the input is read.

Importing numba and loading a cached kernel cost about a second at a process's start, and
half of it is scipy: numba imports it to check its version, and its first load imports
scipy.linalg only to learn whether compiled ``np.dot`` may call BLAS. The token kernels call
no BLAS, so while they load, scipy is refused in the loading thread when nothing has imported
it yet (numba then takes it as absent: compiled ``np.dot`` is unavailable in this process;
numpy and scipy themselves are unaffected, and other threads import scipy as usual).
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

__all__ = ["hash_kernel"]


class _NoScipyInThisThread(importlib.abc.MetaPathFinder):
    """Refuses scipy and its sub-packages in the thread that created it only."""

    def __init__(self) -> None:
        self.thread = threading.get_ident()

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname.split(".")[0] == "scipy" and threading.get_ident() == self.thread:
            raise ImportError("scipy is not imported while the token kernel loads")
        return None


@contextmanager
def _scipy_refused() -> Iterator[None]:
    finder = _NoScipyInThisThread()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


@functools.cache
def hash_kernel() -> ModuleType:
    """:mod:`.hmac_kernel`, imported and its compiled kernel loaded (once a process)."""
    with _scipy_refused():   # no effect on what is imported already
        from . import hmac_kernel
        hmac_kernel.warm_up()
    return hmac_kernel
