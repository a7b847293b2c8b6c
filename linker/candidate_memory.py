"""Before a link holds its candidates in memory: about how many there will be and what they
take. A run that would not fit says so at once, with what to do, instead of being killed by
the system minutes later with nothing written (clkhash's random names, 60,000 a party, at the
default 0.65: 55 million candidates, 8 GB).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from .backends import Backend
from .clkset import ClkSet
from .floor_pairs import count_pairs, rows_of
from .link import candidate_floors
from .link_streamed import streams

__all__ = ["BYTES_PER_CANDIDATE", "MemoryProblem", "projected_candidates", "physical_memory",
           "memory_problem", "run_memory_problem"]

# Peak resident memory of an in-memory link per candidate: 8.0 GB for 54.9 million (clkhash's
# random names, 60,000 a party, 1:1 at 0.65), about 150 bytes each (the candidates, their
# anonlink order, the solver's arrays).
BYTES_PER_CANDIDATE = 150
_WARN_BYTES = 2 << 30
# Records sampled from each side to project a pair of parties' candidates: a sample against a
# sample keeps the projection's plan and search small (a few ms at 60,000 x 60,000); where
# candidates are many enough to matter it is within a few percent (random names at 0.65: 54.9
# million held).
_A_ROWS, _B_ROWS = 256, 8192


class MemoryProblem(NamedTuple):
    """What to say of a run's candidates' memory, and whether the run is refused."""

    message: str
    refused: bool


def projected_candidates(sets: Sequence[ClkSet], threshold: float, dedup: Sequence[bool],
                         solver: str, dedup_thresholds: Sequence[float | None] | None,
                         backend: Backend) -> int:
    """About how many candidates ``link_sets`` would hold: each compared pair of parties'
    pairs from its floor (``candidate_floors``), projected from samples of records."""
    return sum(_projected(sets[i], None if i == j else sets[j], floor, backend)
               for i, j, floor in candidate_floors(sets, threshold, dedup, solver,
                                                   dedup_thresholds))


def _projected(a: ClkSet, b: ClkSet | None, floor: float, backend: Backend) -> int:
    """Pairs of ``a`` and ``b`` (None: within ``a``) from ``floor``: those between a random
    sample of each side (within one party, two disjoint samples), scaled; counted exactly
    where a side is that small; none where a side is empty."""
    if len(a) == 0 or (b is not None and len(b) == 0):
        return 0
    rng = np.random.default_rng(0)
    if b is None:
        if len(a) <= _A_ROWS + _B_ROWS:
            return count_pairs(a, None, floor, backend)
        chosen = rng.choice(len(a), _A_ROWS + _B_ROWS, replace=False)
        first, second = rows_of(a, chosen[:_A_ROWS]), rows_of(a, chosen[_A_ROWS:])
        pairs = len(a) * (len(a) - 1) / 2
    else:
        first = a if len(a) <= _A_ROWS else rows_of(a, rng.choice(len(a), _A_ROWS,
                                                                  replace=False))
        second = b if len(b) <= _B_ROWS else rows_of(b, rng.choice(len(b), _B_ROWS,
                                                                   replace=False))
        pairs = len(a) * len(b)
    return round(count_pairs(first, second, floor, backend) * pairs
                 / (len(first) * len(second)))


def physical_memory() -> int | None:
    """This machine's memory in bytes, where the system says (POSIX)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def memory_problem(candidates: int, memory: int | None,
                   whose: str = "this machine's") -> MemoryProblem | None:
    """What to say of holding ``candidates`` (and whether it is a refusal: more than
    ``memory``, ``whose`` it is), or None where they fit easily."""
    needed = candidates * BYTES_PER_CANDIDATE
    refuse = memory is not None and needed > memory
    if needed < _WARN_BYTES and not refuse:
        return None
    where = f" of {whose} {memory / 2**30:.3g} GiB" if memory else ""
    return MemoryProblem(
        f"about {candidates:,} candidate pairs (projected from a sample of records) would be "
        f"held in memory: about {needed / 2**30:.1f} GiB{where}; a higher threshold, LSH "
        f"blocking or the dask backend (which solves from files) makes fewer or holds none",
        refuse)


def run_memory_problem(backend: Backend, sets: Sequence[ClkSet], threshold: float,
                       dedup: Sequence[bool], *, blocked: bool, tokens: Sequence[str],
                       solver: str, dedup_thresholds: Sequence[float | None] | None,
                       limit: int | None = None) -> MemoryProblem | None:
    """``memory_problem`` of a link run against ``limit`` (bytes; None: the machine's
    memory), or None where it fits or holds no candidates in memory: blocked (projecting its
    bands' pairs is not done) or solved from files (``streams``)."""
    if blocked or streams(backend, sets, dedup, tokens, solver):
        return None
    candidates = projected_candidates(sets, threshold, dedup, solver, dedup_thresholds,
                                      backend)
    if limit is not None:
        return memory_problem(candidates, limit, "the service's run_memory_bytes,")
    return memory_problem(candidates, physical_memory())
