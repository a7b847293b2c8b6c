"""The smallest compiled function, whose first call loads numba's registries
(``numba_start.start_numba``)."""

from __future__ import annotations

import numba

__all__ = ["nothing"]


@numba.njit(cache=True)
def nothing() -> int:  # pragma: no cover
    return 0
