"""GPU backend: candidate generation on one GPU, checked against the CPU backend, side by side.

Two parties of random 1024-bit CLKs drawn as ``bench_dask.make_parties`` draws them (each
row's bit density 0.3-0.5, B holding copies of A's rows with 1.5% of bits flipped,
shuffled), all pairs (no blocking) at Dice >= 0.8. Drawn on the GPU with CuPy's generator
(10M rows in seconds; NumPy's takes minutes), so the data differ from bench_dask's.

Measured, in this order, each after a warm-up:
- check: ``--check-records`` a side on the GPU and on the CPU backend (all cores of this
  machine), candidates compared row by row (must be identical), both timed: the ratio.
- sizes: ``--records`` a side (several sizes), ``candidate_pairs`` timed whole (plans on the
  host, B unpacked on the device, products, the threshold kernel, candidates copied back
  and put in anonlink's order); pairs/s = n x m / seconds.
- products alone (before the sizes): one tile's float16 product (``tile_rows`` x
  ``block_rows`` x 1024), timed with CUDA events: the tensor-core rate the backend runs
  at; and, where PyTorch is installed, the same product in float8 (``torch._scaled_mm``)
  and int8 (``torch._int_mm``), each checked equal to the float16 one: what a faster
  product would give.
- deduplication: ``--dedup-records`` records (A and B as one party: every record twice),
  pairs within the set, n (n - 1) / 2 of them.
- whole process: ``pprl link --backend gpu`` of ``--cli-records`` a side written as
  encodings files, timed as a user runs it (start-up, reading, candidates, 1:1 solve,
  writing the results), run.json read back.
- big: ``--big`` a side, stopped at ``--deadline`` seconds if not done (the rows done and
  the projection for all are reported then).

    python -m benchmarks.bench_gpu --records 1000000 --big 10000000 --deadline 300
    python -m benchmarks.bench_gpu --backend cpu --records 20000 --check-records 5000  # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from linker.backends import Backend, candidate_pairs, get_backend
from linker.clkset import ClkSet
from tokenizer.parallel import default_workers

from .bench_dask import make_parties
from .bench_matching import write_encodings
from .measure import peak_rss_mib, run_measured
from .report import print_table, write_json

_BITS = 1024
_DRAWN_ROWS = 1 << 20  # rows drawn on the GPU at once (4 GB of float32 draws)


class _OutOfTime(Exception):
    """The big run passed its deadline."""


def draw_parties(records: int, seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """A and B as uint8 CLK bytes: on the GPU with CuPy where there is one, else NumPy."""
    try:
        import cupy
    except ImportError:
        return make_parties(records, seed)
    rng = cupy.random.RandomState(seed)
    a = np.empty((records, _BITS // 8), dtype=np.uint8)
    b = np.empty_like(a)
    for first in range(0, records, _DRAWN_ROWS):
        rows = min(_DRAWN_ROWS, records - first)
        density = rng.uniform(0.3, 0.5, size=(rows, 1), dtype=cupy.float32)
        bits = rng.random_sample((rows, _BITS), dtype=cupy.float32) < density
        flips = rng.random_sample((rows, _BITS), dtype=cupy.float32) < 0.015
        a[first:first + rows] = cupy.packbits(bits.reshape(-1)).reshape(rows, -1).get()
        b[first:first + rows] = cupy.packbits((bits ^ flips).reshape(-1)).reshape(rows, -1).get()
    return a, b[np.random.default_rng(seed).permutation(records)]


def _timed(backend: Backend, a: ClkSet, b: ClkSet | None, threshold: float,
           deadline: float | None = None) -> dict[str, Any]:
    """``candidate_pairs`` timed whole; past ``deadline`` seconds, the share of A done."""
    started = time.perf_counter()
    done = [0]

    def progress(rows: int) -> None:
        done[0] += rows
        if deadline is not None and time.perf_counter() - started > deadline:
            raise _OutOfTime

    try:
        found = candidate_pairs(a, b, threshold, backend=backend, progress=progress)
    except _OutOfTime:
        seconds = time.perf_counter() - started
        return {"seconds": round(seconds, 2), "rows_done": done[0], "finished": False,
                "projected_seconds": round(seconds * len(a) / max(done[0], 1), 1)}
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 3), "rows_done": len(a), "finished": True,
            "candidates": len(found), "found": found}


def _row(label: str, a: ClkSet, b: ClkSet | None, timing: dict[str, Any]) -> dict[str, Any]:
    total = len(a) * (len(a) - 1) // 2 if b is None else len(a) * len(b)
    pairs = total * timing["rows_done"] / len(a)
    return {"run": label, "records_a": len(a), "records_b": len(a if b is None else b),
            "seconds": timing["seconds"], "pairs_per_s": float(f"{pairs / timing['seconds']:.3g}"),
            "candidates": timing.get("candidates"), "finished": timing["finished"],
            "projected_seconds": timing.get("projected_seconds")}


def check(gpu: Backend, records: int, threshold: float) -> dict[str, Any]:
    """The GPU's candidates and the CPU backend's on the same parties, timed."""
    a, b = (ClkSet.from_arrays(x) for x in draw_parties(records, seed=7))
    cpu = get_backend("cpu", workers=default_workers())
    warm = ClkSet.from_arrays(a.words[:2000].view(np.uint8))
    for backend in (gpu, cpu):
        candidate_pairs(warm, warm, threshold, backend=backend)
    ours, theirs = _timed(gpu, a, b, threshold), _timed(cpu, a, b, threshold)
    same = all(np.array_equal(getattr(ours["found"], f), getattr(theirs["found"], f))
               for f in ("left", "right", "score"))
    return {"records": records, "identical_candidates": same,
            "candidates": ours["candidates"], "gpu_seconds": ours["seconds"],
            "cpu_seconds": theirs["seconds"], "cpu_workers": default_workers(),
            "gpu_speed_vs_cpu": round(theirs["seconds"] / ours["seconds"], 1)}


def _sized(backend: Backend, records: int, threshold: float, deadline: float | None
           ) -> dict[str, Any]:
    """A link of two parties of ``records``, timed (stopped past ``deadline``)."""
    a, b = (ClkSet.from_arrays(x) for x in draw_parties(records))
    row = _row(f"{records:,} x {records:,}", a, b, _timed(backend, a, b, threshold, deadline))
    print_table([row])
    return row


def whole_link(backend: str, records: int, threshold: float) -> dict[str, Any]:
    """``pprl link --backend BACKEND`` of two files of ``records`` CLKs, timed whole."""
    a, b = draw_parties(records, seed=11)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = [str(write_encodings(folder / f"{party}.parquet", clks, party, "bench-gpu"))
                 for party, clks in (("a", a), ("b", b))]
        del a, b
        measured = run_measured([sys.executable, "-m", "api.cli", "link", *files,
                                 "--threshold", str(threshold), "--backend", backend,
                                 "-o", str(folder / "out")])
        run_json = json.loads((folder / "out" / "run.json").read_text(encoding="utf-8"))
    return {"run": f"pprl link {records:,} x {records:,}", "seconds": round(measured.seconds, 2),
            "pairs_per_s": float(f"{records * records / measured.seconds:.3g}"),
            "compare_solve_s": run_json["seconds"], "links": run_json["links"],
            "backend": run_json["backend"], "product": run_json.get("product"),
            "device": run_json.get("device"),
            "peak_rss_mib": round(measured.peak_rss_bytes / 2**20, 1)}


def _event_seconds(cupy: Any, run: Any, repeats: int = 10) -> float:
    """Mean seconds of ``run()`` on the GPU over ``repeats`` after one warm-up."""
    run()
    start, stop = cupy.cuda.Event(), cupy.cuda.Event()
    start.record()
    for _ in range(repeats):
        run()
    stop.record()
    stop.synchronize()
    return cupy.cuda.get_elapsed_time(start, stop) / 1000 / repeats


def products(tile_rows: int, block_rows: int) -> list[dict[str, Any]]:
    """One tile's product of random 0/1 matrices in float16 (CuPy), and in float8 and int8
    (PyTorch, where installed), timed with CUDA events; each checked against float16."""
    import cupy

    rng = cupy.random.RandomState(3)
    a = (rng.random_sample((tile_rows, _BITS), dtype=cupy.float32) < 0.4).astype(cupy.float16)
    b = (rng.random_sample((block_rows, _BITS), dtype=cupy.float32) < 0.4).astype(cupy.float16)
    flops = 2.0 * tile_rows * block_rows * _BITS
    half = a @ b.T
    rows = [{"product": "float16 (CuPy, cuBLAS)",
             "ms": _event_seconds(cupy, lambda: a @ b.T) * 1e3, "equal_to_float16": True}]
    try:
        import torch
    except ImportError:
        return _rated(rows, flops, tile_rows * block_rows)
    ta, tb = torch.from_dlpack(a), torch.from_dlpack(b)
    expected = torch.from_dlpack(half)
    a8, b8 = ta.to(torch.float8_e4m3fn), tb.to(torch.float8_e4m3fn)
    one = torch.ones((), device=ta.device, dtype=torch.float32)
    ai, bi = ta.to(torch.int8), tb.to(torch.int8)
    variants = {
        "float8 e4m3 -> float16 (torch._scaled_mm)":
            lambda: torch._scaled_mm(a8, b8.t(), scale_a=one, scale_b=one,
                                     out_dtype=torch.float16),
        "int8 -> int32 (torch._int_mm)": lambda: torch._int_mm(ai, bi.t()),
    }
    for label, run in variants.items():
        try:
            equal = bool(torch.equal(run().to(torch.float32), expected.to(torch.float32)))
            rows.append({"product": label, "ms": _event_seconds(cupy, run) * 1e3,
                         "equal_to_float16": equal})
        except (RuntimeError, TypeError) as e:  # not on this GPU or this PyTorch
            rows.append({"product": label, "ms": None, "equal_to_float16": None,
                         "error": str(e).splitlines()[0][:200]})
    return _rated(rows, flops, tile_rows * block_rows)


def _rated(rows: list[dict[str, Any]], flops: float, pairs: int) -> list[dict[str, Any]]:
    for row in rows:
        ms = row["ms"]
        row["tflop_per_s"] = round(flops / ms / 1e9, 1) if ms else None
        row["pairs_per_s"] = float(f"{pairs / ms * 1e3:.3g}") if ms else None
        row["ms"] = round(ms, 3) if ms else None
    return rows


def _device(backend: Backend) -> dict[str, Any]:
    described = backend.describe()
    try:
        import cupy
    except ImportError:
        return described
    free, total = cupy.cuda.runtime.memGetInfo()
    return {**described, "memory_gib": round(total / 2**30, 1), "cupy": cupy.__version__,
            "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion()}


def run(backend_name: str, sizes: list[int], check_records: int, big: int, deadline: float,
        threshold: float, dedup_records: int = 0, cli_records: int = 0) -> dict[str, Any]:
    backend = get_backend(backend_name)
    result: dict[str, Any] = {"benchmark": "gpu", "threshold": threshold, "bits": _BITS,
                              "device": _device(backend),
                              "machine": {"cpus": default_workers(),
                                          "platform": platform.platform(),
                                          "python": platform.python_version()}}
    result["check"] = check(backend, check_records, threshold)
    print_table([result["check"]], title="GPU vs CPU backend, same parties")
    if backend_name == "gpu":
        tile_rows, block_rows = backend.tile_rows, backend.block_rows  # type: ignore[attr-defined]
        result["products"] = products(tile_rows, block_rows)
        print_table(result["products"], title=f"one product, {tile_rows:,} x {block_rows:,} x "
                                              f"{_BITS}")
    rows = []
    if dedup_records:
        one = ClkSet.from_arrays(np.vstack(draw_parties(dedup_records // 2)))
        rows.append(_row(f"dedup {len(one):,}", one, None, _timed(backend, one, None, threshold)))
        print_table(rows[-1:])
        del one
    for records in sizes:
        rows.append(_sized(backend, records, threshold, None))
    if cli_records:
        result["whole_process"] = whole_link(backend_name, cli_records, threshold)
        print_table([result["whole_process"]], title="whole process")
    if big:
        rows.append(_sized(backend, big, threshold, deadline))
    result["sizes"] = rows
    backend.close()
    result["peak_rss_mib"] = round(peak_rss_mib(), 1)
    result["definitions"] = {
        "seconds": "candidate_pairs whole, after a warm-up: plans on the host, B on the "
                   "device, products, threshold, candidates back and in anonlink's order",
        "pairs_per_s": "n x m (x the share of A rows done) / seconds",
        "projected_seconds": "a run stopped at its deadline: seconds x rows / rows done",
        "gpu_speed_vs_cpu": "the CPU backend's seconds (all this machine's cores) / the GPU's",
    }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="gpu", choices=["gpu", "cpu"],
                        help="cpu: run this script's steps on the CPU backend (a smoke test)")
    parser.add_argument("--records", default="1000000",
                        help="comma-separated records per party (default 1000000)")
    parser.add_argument("--check-records", type=int, default=200_000,
                        help="records per party compared with the CPU backend")
    parser.add_argument("--dedup-records", type=int, default=0,
                        help="records of a deduplication run (0: none)")
    parser.add_argument("--cli-records", type=int, default=0,
                        help="records per party of a whole `pprl link --backend gpu` (0: none)")
    parser.add_argument("--big", type=int, default=0, help="records per party of the big run")
    parser.add_argument("--deadline", type=float, default=300.0,
                        help="seconds after which the big run stops and is projected")
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/gpu.json"))
    args = parser.parse_args(argv)
    sizes = [int(x) for x in args.records.split(",") if x]
    result = run(args.backend, sizes, args.check_records, args.big, args.deadline,
                 args.threshold, args.dedup_records, args.cli_records)
    write_json(args.json, result)
    return 0 if result["check"]["identical_candidates"] else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
