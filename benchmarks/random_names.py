"""clkhash's own random-names data and example schema, made by clkhash in its peer venv.

Names drawn from census name lists, dates of birth from an age distribution and a sex: few
values repeat, unlike FEBRL-like data, so no cache of repeated values helps (the data the
speed claims must also hold on).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from .peers import SCRIPTS_DIR, peer_python

__all__ = ["randomnames_schema", "write_randomnames", "write_randomnames_pair"]


def _clkhash(*args: str | Path | int | float) -> None:
    python = peer_python("clkhash")
    subprocess.run([str(python), str(SCRIPTS_DIR / "clkhash_randomnames.py"), *map(str, args)],
                   check=True)


def randomnames_schema(workdir: Path) -> Path:
    """clkhash's example schema (``data/randomnames-schema.json``) as a file in ``workdir``."""
    path = workdir / "randomnames-schema.json"
    if not path.exists():
        _clkhash("schema", path)
    return path


def write_randomnames(path: Path, count: int, seed: int) -> Path:
    """``count`` people as a CSV (INDEX, NAME freetext, DOB YYYY/MM/DD, GENDER M or F)."""
    if not path.exists():
        _clkhash("records", count, seed, path)
    return path


def write_randomnames_pair(first: Path, second: Path, count: int, seed: int,
                           overlap: float = 0.8) -> tuple[Path, Path]:
    """Two files of ``count`` people each, ``overlap`` of them in both."""
    if not (first.exists() and second.exists()):
        _clkhash("subsets", count, seed, overlap, first, second)
    return first, second
