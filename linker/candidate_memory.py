"""Before a link holds its candidates in memory: about how many there will be and what they
take. A run that would not fit says so at once, with what to do, instead of being killed by
the system minutes later with nothing written (clkhash's random names, 60,000 a party, at the
default 0.65: 55 million candidates, 8 GB).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from .backends import Backend
from .clkset import ClkSet
from .floor_pairs import projected_pairs
from .link import candidate_floors
from .link_streamed import streams

__all__ = ["BYTES_PER_CANDIDATE", "projected_candidates", "physical_memory", "memory_problem",
           "run_memory_problem"]

# Peak resident memory of an in-memory link per candidate: 8.0 GB for 54.9 million (clkhash's
# random names, 60,000 a party, 1:1 at 0.65), about 150 bytes each (the candidates, their
# anonlink order, the solver's arrays).
BYTES_PER_CANDIDATE = 150
_WARN_BYTES = 2 << 30
# Records sampled to project each pair of parties' candidates: at 256, 60,000 x 60,000 at 0.8
# costs about 25 ms, and the projection is within a few percent (random names at 0.65: 55.4
# million projected from 512 records, 54.9 million held).
_SAMPLE_ROWS = 256


def projected_candidates(sets: Sequence[ClkSet], threshold: float, dedup: Sequence[bool],
                         solver: str, dedup_thresholds: Sequence[float | None] | None,
                         backend: Backend) -> int:
    """About how many candidates ``link_sets`` would hold: each compared pair of parties'
    pairs from its floor (``candidate_floors``), projected from a sample of records."""
    return sum(projected_pairs(sets[i], None if i == j else sets[j], floor, backend,
                               sample_rows=_SAMPLE_ROWS)
               for i, j, floor in candidate_floors(sets, threshold, dedup, solver,
                                                   dedup_thresholds))


def physical_memory() -> int | None:
    """This machine's memory in bytes, where the system says (POSIX)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def memory_problem(candidates: int, memory: int | None) -> tuple[str, bool] | None:
    """What to say of holding ``candidates`` (and whether it is a refusal: more than the
    machine's ``memory``), or None where they fit easily."""
    needed = candidates * BYTES_PER_CANDIDATE
    if needed < _WARN_BYTES:
        return None
    refuse = memory is not None and needed > memory
    where = f" of this machine's {memory / 2**30:.0f} GiB" if memory else ""
    return (f"about {candidates:,} candidate pairs (projected from a sample of records) would "
            f"be held in memory: about {needed / 2**30:.1f} GiB{where}; a higher threshold, LSH "
            f"blocking or the dask backend (which solves from files) makes fewer or holds "
            f"none", refuse)


def run_memory_problem(backend: Backend, sets: Sequence[ClkSet], threshold: float,
                       dedup: Sequence[bool], *, blocked: bool, tokens: Sequence[str],
                       solver: str, dedup_thresholds: Sequence[float | None] | None
                       ) -> tuple[str, bool] | None:
    """``memory_problem`` of a link run, or None where it fits or holds no candidates in
    memory: blocked (projecting its bands' pairs is not done) or solved from files
    (``streams``)."""
    if blocked or streams(backend, sets, dedup, tokens, solver):
        return None
    return memory_problem(projected_candidates(sets, threshold, dedup, solver,
                                               dedup_thresholds, backend), physical_memory())
