"""Loading the token hash kernel quickly, e.g. in a thread while the input is read: numba
imported and the kernel loaded with scipy refused in the loading thread (``numba_start``:
half of numba's start-up is scipy, which the token kernels do not use).
"""

from __future__ import annotations

import functools
from types import ModuleType

from ..numba_start import scipy_refused

__all__ = ["hash_kernel"]


@functools.cache
def hash_kernel() -> ModuleType:
    """:mod:`.hmac_kernel`, imported and its compiled kernel loaded (once a process)."""
    with scipy_refused():   # no effect on what is imported already
        from . import hmac_kernel
        hmac_kernel.warm_up()
    return hmac_kernel
