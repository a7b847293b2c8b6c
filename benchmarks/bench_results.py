"""Serving result pages: reading every page of a large run's results against reading its
files once.

A run of two parties with ``--records`` records each (about half of them linked) is written
as the service writes it; then every page of one party's record -> entity mapping and every
page of the groups is read through the service's result store, as its page endpoints do.
The figure that matters is the ratio of all pages to one read of the files, measured in the
same run; peak memory is that of this process.
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from api.results_store import GROUPS, PARTIES, ResultStore, write_run_results
from linker.link import LinkResult

from .report import print_table, write_json

_EMPTY = np.zeros(0, np.int64)


def _result(records: int, seed: int = 3) -> LinkResult:
    """Two parties; a random half of the second party's records linked 1:1 to the first's."""
    rng = np.random.default_rng(seed)
    ids = [[f"a{i:08d}" for i in range(records)], [f"b{i:08d}" for i in range(records)]]
    first = np.arange(records, dtype=np.int64)
    second = np.arange(records, records * 2, dtype=np.int64)
    linked = rng.choice(records, records // 2, replace=False)
    second[linked] = rng.permutation(records)[: len(linked)]
    return LinkResult(["a", "b"], ids, _EMPTY, _EMPTY, _EMPTY, _EMPTY,
                      np.zeros(0, np.float64), [first, second])


def _all_pages(read: callable, limit: int) -> int:  # type: ignore[valid-type]
    offset, pages = 0, 0
    while True:
        total, items = read(offset, limit)
        pages += 1
        offset += len(items)
        if not items or offset >= total:
            return pages


def run(records: int, limit: int, workdir: Path) -> dict[str, object]:
    folder = workdir / "runs" / "prj" / "1"
    folder.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    write_run_results(folder, _result(records), {}, b"benchmark service key, 32 bytes..",
                      "prj", 1)
    written = time.perf_counter() - started
    started = time.perf_counter()
    once = pq.read_table(folder / PARTIES)
    pq.read_table(folder / GROUPS)
    read_once = time.perf_counter() - started
    store = ResultStore(1 << 30)
    started = time.perf_counter()
    party_pages = _all_pages(lambda o, n: store.party_entities(folder, "a", o, n), limit)
    party_s = time.perf_counter() - started
    started = time.perf_counter()
    group_pages = _all_pages(lambda o, n: store.groups(folder, 2, o, n), limit)
    groups_s = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = [
        {"what": "read parties.parquet and groups.parquet once", "pages": 1,
         "seconds": round(read_once, 3), "ratio_to_one_read": 1.0},
        {"what": f"every page of party a's entities ({limit} a page)", "pages": party_pages,
         "seconds": round(party_s, 3), "ratio_to_one_read": round(party_s / read_once, 2)},
        {"what": f"every page of the groups of 2+ ({limit} a page)", "pages": group_pages,
         "seconds": round(groups_s, 3), "ratio_to_one_read": round(groups_s / read_once, 2)},
    ]
    return {"benchmark": "results", "records": records * 2, "records_per_party": records,
            "rows_in_parties_file": once.num_rows, "write_seconds": round(written, 2),
            "peak_rss_mib": round(peak), "machine": {"platform": platform.platform(),
                                                     "python": platform.python_version()},
            "results": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000, help="records per party")
    parser.add_argument("--limit", type=int, default=1000, help="items a page")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/results.json"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args.records, args.limit, Path(tmp))
    print_table(result["results"], title=f"Result pages of a {result['records']:,}-record run "
                                         f"(peak RSS {result['peak_rss_mib']} MiB)")
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
