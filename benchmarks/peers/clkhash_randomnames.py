"""Run inside the clkhash peer venv: clkhash's own random-names data and example schema.

Usage:
    python clkhash_randomnames.py schema OUT.json
    python clkhash_randomnames.py records N SEED OUT.csv
    python clkhash_randomnames.py subsets N SEED OVERLAP A.csv B.csv

``schema`` copies clkhash's example schema (``data/randomnames-schema.json``: a name as bigrams,
a date of birth as positional unigrams, a gender enum; 1024 bits). ``records`` writes N people
from ``clkhash.randomnames.NameList`` (names drawn from census name lists, dates from an age
distribution: few values repeat), with the header clkhash's tools write. ``subsets`` writes two
files of N people each sharing OVERLAP of them (``NameList.generate_subsets``), for matching.
"""

import pkgutil
import random
import sys

from clkhash import randomnames


def _write(path: str, people: list) -> None:
    headers = [f.identifier for f in randomnames.NameList.SCHEMA.fields]
    with open(path, "w", encoding="utf-8", newline="") as handle:
        randomnames.save_csv(people, headers, handle)


def main() -> None:
    command = sys.argv[1]
    if command == "schema":
        with open(sys.argv[2], "wb") as handle:
            handle.write(pkgutil.get_data("clkhash", "data/randomnames-schema.json") or b"")
        return
    count, seed = int(sys.argv[2]), int(sys.argv[3])
    random.seed(seed)
    if command == "records":
        _write(sys.argv[4], randomnames.NameList(count).names)
        return
    overlap = float(sys.argv[4])
    people = randomnames.NameList(int(count * (2 - overlap)) + 1)
    first, second = people.generate_subsets(count, overlap)
    _write(sys.argv[5], first)
    _write(sys.argv[6], second)


if __name__ == "__main__":
    main()
