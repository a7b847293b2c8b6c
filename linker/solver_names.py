"""The solvers' names, importable without compiling their kernels (the client CLI uses them)."""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["Solver", "SOLVERS", "DEFAULT_SOLVER"]

Solver = Literal["cluster", "greedy"]
SOLVERS: tuple[Solver, ...] = get_args(Solver)
DEFAULT_SOLVER: Solver = "cluster"
