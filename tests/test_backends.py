"""Every backend gives exactly the CPU backend's candidates and scores, on the same cases:
random CLKs (thresholds at exact score boundaries), FEBRL 4, blocked and not, linkage and
deduplication. The Dask backend runs on a real ``distributed.LocalCluster`` of worker
processes; the GPU backend needs CuPy and a device (marked ``gpu``, skipped otherwise)."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from api.cli import cli
from linker.backends import (
    Backend,
    BackendUnavailableError,
    available_backends,
    candidate_pairs,
    get_backend,
)
from linker.backends.cpu import CpuBackend
from linker.backends.dask_bands import _part_of
from linker.backends.gpu import MatrixBackend
from linker.backends.merge import merge_sorted, merged_candidates
from linker.blocking import LshBlocking, blocked_pairs, reported_by_band, words_band_keys
from linker.clkset import ClkSet
from linker.dice_kernel import min_counts
from linker.link import link_sets
from linker.link_streamed import link_groups_streamed, link_two_streamed, streams
from linker.results import write_results

from .linker_data import febrl4_sets, random_clks, write_clk_set

Factory = Callable[..., Backend]


def _gpu_ready() -> bool:
    if importlib.util.find_spec("cupy") is None:
        return False
    import cupy

    try:
        return bool(cupy.cuda.runtime.getDeviceCount())
    except cupy.cuda.runtime.CUDARuntimeError:
        return False


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A local cluster of two single-threaded worker processes; yields its address."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None,
                                  local_directory=str(tmp_path_factory.mktemp("dask"))
                                  ) as cluster:
        yield cluster.scheduler_address


@pytest.fixture(params=["cpu-scalar", "cpu-lanes", "matrix-numpy", "matrix-numpy-small-memory",
                        pytest.param("dask", marks=pytest.mark.dask),
                        pytest.param("gpu", marks=pytest.mark.gpu),
                        pytest.param("gpu-float16", marks=pytest.mark.gpu),
                        pytest.param("gpu-small-memory", marks=pytest.mark.gpu)])
def make_backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                 ) -> Factory:
    """A backend of each kind, with tiles small enough that every case spans several (for
    Dask: tasks; ``task_rows`` sets their size), and B in several blocks. ``small-memory``:
    B may take at most 4 KB on the device, so it is held packed or copied block by block.
    ``gpu``: float8 products where PyTorch runs them (else float16), ``gpu-float16``: CuPy's
    float16 products."""
    name = request.param
    if name.startswith("cpu-"):
        return lambda task_rows=None: CpuBackend(2, tile_rows=13, kernel=name[4:])
    held = 4096 if name.endswith("-small-memory") else None
    if name.startswith("matrix-numpy"):  # the GPU backend's code on NumPy
        return lambda task_rows=64: MatrixBackend(np, tile_rows=task_rows,
                                                  block_rows=max(50, 2 * task_rows),
                                                  held_bytes=held)
    if name == "dask":
        address = request.getfixturevalue("dask_cluster")
        shared = tmp_path_factory.mktemp("tiles")
        return lambda task_rows=40: get_backend("dask", scheduler=address, shared_dir=shared,
                                                tile_rows=task_rows, plan_rows=4000)
    if not _gpu_ready():
        pytest.skip("no CuPy or no GPU here")
    product = "float16" if name == "gpu-float16" else "auto"
    return lambda task_rows=64: get_backend("gpu", tile_rows=task_rows,
                                            block_rows=max(50, 2 * task_rows), held_bytes=held,
                                            product=product)


def _reference() -> CpuBackend:
    """The oracle: the scalar CPU kernel, itself checked against brute force and anonlink."""
    return CpuBackend(1, tile_rows=4096, kernel="scalar")


def _same(ours, theirs) -> None:
    assert len(theirs) > 0
    for field in ("left", "right", "score"):
        assert getattr(ours, field).tolist() == getattr(theirs, field).tolist(), field


def _brute_force(a: np.ndarray, b: np.ndarray | None, threshold: float
                 ) -> list[tuple[int, int, float]]:
    """Every pair's Dice by anonlink's formula over all pairs, in anonlink's order."""
    other = a if b is None else b
    pa = np.bitwise_count(a).sum(axis=1).astype(np.int64)
    pb = np.bitwise_count(other).sum(axis=1).astype(np.int64)
    common = np.bitwise_count(a[:, None, :] & other[None, :, :]).sum(axis=2)
    sums = (pa[:, None] + pb[None, :]).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = np.where(sums > 0, 2.0 * common / sums, 0.0)
    keep = dice >= threshold
    if b is None:
        keep = np.triu(keep, k=1)
    left, right = np.nonzero(keep)
    return sorted(zip(left.tolist(), right.tolist(), dice[left, right].tolist(), strict=True),
                  key=lambda p: (-p[2], p[0], p[1]))


@pytest.mark.parametrize("bits", [64, 512])
@pytest.mark.parametrize("within", [False, True], ids=["link", "dedup"])
def test_random_clks_every_pair_at_exact_boundaries(make_backend: Factory, bits: int,
                                                    within: bool) -> None:
    """Short CLKs make many pairs score exactly 0.5, 2/3 or 0.8: each is in, by anonlink's
    float64 formula, as the brute force over all pairs says (``score_counts``, the valley's
    search: as many pairs at each score, a bin for every score there is)."""
    rng = np.random.default_rng(bits)
    a = random_clks(rng, 150, bits, (0.05, 0.7), zero_rows=3)
    b = np.vstack([a[:90] ^ np.packbits(rng.random((90, bits)) < 0.03, axis=1),
                   random_clks(rng, 70, bits, (0.05, 0.7), zero_rows=2)])
    backend = make_backend()
    every_score = np.append(np.unique([s for _, _, s in _brute_force(a, None if within else b,
                                                                    0.5)]), 1.5)
    for threshold in (0.5, 2 / 3, 0.8, 1.0):
        expected = _brute_force(a, None if within else b, threshold)
        found = candidate_pairs(ClkSet.from_arrays(a), None if within else ClkSet.from_arrays(b),
                                threshold, backend=backend)
        assert list(zip(found.left.tolist(), found.right.tolist(), found.score.tolist(),
                        strict=True)) == expected, threshold
        counts = backend.score_counts(ClkSet.from_arrays(a),
                                      None if within else ClkSet.from_arrays(b), threshold,
                                      every_score)
        assert counts.tolist() == np.histogram([s for _, _, s in expected],
                                               bins=every_score)[0].tolist(), threshold
    boundary = [s for _, _, s in _brute_force(a, b, 0.5)]
    assert {0.5, 0.8} <= set(boundary)  # the exact boundary cases do occur


@pytest.mark.parametrize("within", [False, True], ids=["link", "dedup"])
def test_most_pairs_passing_outgrow_the_first_buffer(make_backend: Factory, within: bool
                                                     ) -> None:
    """At a low threshold nearly every pair of dense CLKs passes: a tile of 512 rows finds
    more pairs than the first buffer holds (65,536), and the base retries it with a larger one
    (on the GPU the kernel counts the pairs it could not store)."""
    rng = np.random.default_rng(17)
    a = random_clks(rng, 700, 128, (0.5, 0.8))
    b = random_clks(rng, 600, 128, (0.5, 0.8))
    expected = _brute_force(a, None if within else b, 0.4)
    assert len(expected) > 200_000
    found = candidate_pairs(ClkSet.from_arrays(a), None if within else ClkSet.from_arrays(b),
                            0.4, backend=make_backend(task_rows=512))
    assert list(zip(found.left.tolist(), found.right.tolist(), found.score.tolist(),
                    strict=True)) == expected


@pytest.mark.parametrize("within", [False, True], ids=["link", "dedup"])
@pytest.mark.parametrize("blocked", [False, True], ids=["all-pairs", "lsh"])
def test_febrl4_same_candidates_as_the_cpu_backend(make_backend: Factory, within: bool,
                                                   blocked: bool,
                                                   request: pytest.FixtureRequest) -> None:
    if request.node.callspec.params["make_backend"].startswith("matrix-numpy"):
        pytest.skip("float matrix products of FEBRL 4 take minutes on a CPU; the random "
                    "cases check this code on NumPy, the gpu case on a GPU")
    a, b = febrl4_sets()
    if within:  # both halves as one party: every person twice
        a, b = ClkSet.from_arrays(np.vstack([a.words, b.words]).view(np.uint8)), None
    blocking = LshBlocking() if blocked else None
    theirs = candidate_pairs(a, b, 0.7, blocking=blocking, backend=_reference())
    ours = candidate_pairs(a, b, 0.7, blocking=blocking, backend=make_backend(task_rows=1500))
    _same(ours, theirs)
    assert ours.total == theirs.total


@pytest.mark.parametrize("within", [False, True], ids=["link", "dedup"])
def test_blocked_candidates_are_the_pairs_sharing_a_band_that_pass(make_backend: Factory,
                                                                   within: bool) -> None:
    """Few, coarse bands put rows of very different popcounts into one bucket, so groups of
    eight sorted rows cross a bucket's end (the lanes kernel once skipped a group there by
    taking its first row's popcount for its least). Keys of more than 31 bits are ranked
    before they are combined with popcounts (a few seeds)."""
    backend = make_backend()
    for seed in range(24):
        rng = np.random.default_rng(seed)
        base = random_clks(rng, 60, 512, (0.02, 0.7))
        noisy = (base ^ np.packbits(rng.random((60, 512)) < 0.02, axis=1))[rng.permutation(60)]
        a = ClkSet.from_arrays(base)
        b = None if within else ClkSet.from_arrays(noisy)
        blocking = (LshBlocking(bands=3, bits_per_band=2, seed=seed) if seed < 20 else
                    LshBlocking(bands=2, bits_per_band=40, seed=seed))
        left, right = blocked_pairs(a, b, blocking)
        sharing = set(zip(left.tolist(), right.tolist(), strict=True))
        expected = [p for p in _brute_force(base, None if b is None else noisy, 0.8)
                    if p[:2] in sharing]
        found = candidate_pairs(a, b, 0.8, blocking=blocking, backend=backend)
        assert list(zip(found.left.tolist(), found.right.tolist(), found.score.tolist(),
                        strict=True)) == expected, seed


def test_registry_names_and_refusals() -> None:
    assert "cpu" in available_backends()
    assert get_backend("cpu", workers=2).describe()["backend"] == "cpu"
    with pytest.raises(ValueError, match="unknown backend 'tpu': choose from cpu, dask, gpu"):
        get_backend("tpu")
    if "gpu" not in available_backends():
        with pytest.raises(BackendUnavailableError,
                           match=r"needs cupy.*pip install 'pprl-imaging\[gpu\]'"):
            get_backend("gpu")


@pytest.mark.gpu
def test_gpu_backend_says_which_device_and_product_ran() -> None:
    """run.json records the device and the product; float8 is refused where it cannot run,
    and an unknown product is refused before CUDA is touched."""
    if not _gpu_ready():
        pytest.skip("no CuPy or no GPU here")
    described = get_backend("gpu").describe()
    assert described["backend"] == "gpu" and described["device"]
    assert described["product"] in ("float8", "float16")
    assert get_backend("gpu", product="float16").describe()["product"] == "float16"
    if described["product"] == "float16":
        with pytest.raises(BackendUnavailableError, match="float8 products need PyTorch"):
            get_backend("gpu", product="float8")
    with pytest.raises(ValueError, match="unknown product 'int4'"):
        get_backend("gpu", product="int4")


def test_import_linker_loads_no_optional_engine() -> None:
    """``import linker`` and a CPU run import neither Dask nor CuPy."""
    code = ("import sys, linker.link, linker.cli, linker.backends; "
            "print(sorted(m for m in ('dask', 'distributed', 'cupy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "[]"


def _pprl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "api.cli", *args], capture_output=True,
                          text=True, timeout=300)


def test_cli_refuses_a_backend_it_cannot_run(tmp_path) -> None:
    a, _ = febrl4_sets()
    fa = str(write_clk_set(tmp_path / "a.parquet", a))
    runner = CliRunner()
    misplaced = runner.invoke(cli, ["dedup", fa, "--scheduler", "tcp://127.0.0.1:1", "-o",
                                    str(tmp_path / "x")])
    assert misplaced.exit_code == 2 and "apply to --backend dask only" in misplaced.output
    if "gpu" not in available_backends():
        missing = runner.invoke(cli, ["dedup", fa, "--backend", "gpu", "-o",
                                      str(tmp_path / "gpu")])
        assert missing.exit_code == 1
        assert "pip install 'pprl-imaging[gpu]'" in missing.output
        assert not (tmp_path / "gpu").exists()


@pytest.mark.dask
@pytest.mark.parametrize("blocking", [None, LshBlocking(bands=4)], ids=["all-pairs", "lsh"])
def test_a_dask_worker_killed_mid_run_changes_nothing(dask_cluster: str, tmp_path,
                                                      blocking: LshBlocking | None) -> None:
    """SIGKILL one worker process while its tasks run: the scheduler runs them again on the
    other (or on the worker its nanny restarts) and the candidates are the CPU backend's.
    Blocked (each band planned in two parts), the tasks read the plan files of their band's
    part, which stay until it is merged."""
    a, b = febrl4_sets()
    expected = candidate_pairs(a, b, 0.7, backend=_reference(), blocking=blocking)
    backend = get_backend("dask", scheduler=dask_cluster, shared_dir=tmp_path, tile_rows=250,
                          kernel="scalar", plan_rows=6000)
    client = backend.client  # type: ignore[attr-defined]
    client.wait_for_workers(2, timeout=60)  # the one an earlier case killed is restarted
    killed: list[int] = []

    def kill_a_busy_worker() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            busy = [w for w, keys in client.processing().items()
                    if any("pprl-tile" in str(k) for k in keys)]
            if busy:
                pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_a_busy_worker)
    killer.start()
    found = candidate_pairs(a, b, 0.7, backend=backend, blocking=blocking)
    killer.join()
    assert killed, "no task was seen running"
    assert killed[0] not in client.run(os.getpid).values()
    _same(found, expected)
    # Pairs compared in full depend on the bit order, which the CPU backend may change
    # (linker.bit_order); those visited do not.
    assert found.compared == expected.compared
    assert not list(tmp_path.iterdir())  # the run's files are removed


@pytest.mark.dask
@pytest.mark.parametrize("within", [False, True], ids=["link", "dedup"])
def test_dask_blocked_run_writes_the_sets_once_and_bands_as_indices(dask_cluster: str,
                                                                    tmp_path,
                                                                    within: bool) -> None:
    """The driver writes each set once; a band's plan (made on a worker, in parts by key
    when the sets hold more than ``plan_rows`` records) holds row indices and its
    candidates, never a sorted copy of the CLKs (which cost 10 GB at 1M records)."""
    a, b = febrl4_sets()
    other = None if within else b
    if within:  # both halves as one party: every person twice
        a = ClkSet.from_arrays(np.vstack([a.words, b.words]).view(np.uint8))
    blocking = LshBlocking(bands=3)
    backend = get_backend("dask", scheduler=dask_cluster, shared_dir=tmp_path, tile_rows=700,
                          keep_files=True, plan_rows=4000)
    files = backend.candidate_files(a, other, 0.7, blocking)  # type: ignore[attr-defined]
    (run,) = tmp_path.iterdir()
    sets = ["a_words.npy"] if within else ["a_words.npy", "b_words.npy"]
    assert sorted(p.name for p in run.glob("*_words.npy")) == sets
    parts = 3  # 10,000 records in all, at most 4,000 a plan
    assert sorted(p.name for p in files.paths) == [
        f"band-{k:04d}-{part:03d}.parquet" for k in range(3) for part in range(parts)]
    set_bytes = (run / "a_words.npy").stat().st_size
    for band in range(3):
        rows = []
        for part in range(parts):
            folder = run / f"band-{band:04d}-{part:03d}"
            assert {p.name for p in folder.glob("*.npy")} == {"a_order.npy", "b_order.npy",
                                                              "starts.npy", "stops.npy"}
            rows.append(np.load(folder / "a_order.npy"))
            assert len(list(folder.glob("cand-*.parquet"))) == -(-len(rows[-1]) // 700)
            assert sum(p.stat().st_size for p in folder.iterdir()) < set_bytes / 2
        assert sorted(np.concatenate(rows).tolist()) == list(range(len(a)))  # each row once
    merged = list(merged_candidates(files.paths))
    theirs = candidate_pairs(a, other, 0.7, blocking=blocking, backend=_reference())
    assert len(theirs) > 1000
    # each pair in one band's files only: the first band it shares
    assert sum(pq.ParquetFile(p).metadata.num_rows for p in files.paths) == len(theirs)
    assert [np.concatenate([m[i] for m in merged]).tolist() for i in range(3)] == [
        theirs.left.tolist(), theirs.right.tolist(), theirs.score.tolist()]
    files.remove()
    assert not list(tmp_path.iterdir())


@pytest.mark.dask
def test_cli_dask_on_a_local_cluster_gives_the_cpu_results(tmp_path) -> None:
    a, b = febrl4_sets()
    fa, fb = write_clk_set(tmp_path / "a.parquet", a), write_clk_set(tmp_path / "b.parquet", b)
    done = _pprl("link", str(fa), str(fb), "--threshold", "0.7", "--backend", "dask",
                 "--workers", "1", "-o", str(tmp_path / "dask"))
    assert done.returncode == 0, done.stderr
    run = json.loads((tmp_path / "dask" / "run.json").read_text())
    assert run["backend"] == "dask" and (run["scheduler"], run["local_workers"]) == ("local", 1)
    write_results(tmp_path / "cpu", link_sets([a, b], 0.7, backend=_reference()), {})
    for table in ("matches.parquet", "entities.parquet"):
        assert pq.read_table(tmp_path / "dask" / table).equals(
            pq.read_table(tmp_path / "cpu" / table)), table


def test_merged_candidates_are_every_files_pairs_in_order(tmp_path) -> None:
    """Sorted files of disjoint pairs (as tiles and bands give), read a few rows at a time:
    one stream in anonlink's order, ties broken by left, right."""
    rng = np.random.default_rng(3)
    pairs = {(int(i), int(j)): float(s) for i, j, s in zip(
        rng.integers(0, 40, 400), rng.integers(0, 40, 400),
        rng.choice([0.7, 0.75, 0.8, 1.0], 400), strict=True)}
    keys = list(pairs)
    owner = rng.integers(0, 5, len(keys))
    paths = []
    for k in range(5):
        chosen = [key for key, file in zip(keys, owner.tolist(), strict=True) if file == k]
        chosen.sort(key=lambda p: (-pairs[p], p[0], p[1]))
        paths.append(tmp_path / f"cand-{k}.parquet")
        pq.write_table(pa.table({"left": [p[0] for p in chosen], "right": [p[1] for p in chosen],
                                 "count": [0] * len(chosen),
                                 "score": [pairs[p] for p in chosen]}), paths[-1])
    paths.append(tmp_path / "empty.parquet")
    pq.write_table(pa.table({"left": pa.array([], pa.int64()), "right": pa.array([], pa.int64()),
                             "count": pa.array([], pa.int64()),
                             "score": pa.array([], pa.float64())}), paths[-1])
    files = [pq.read_table(p) for p in paths]
    union = {(int(i), int(j)) for f in files
             for i, j in zip(f.column("left").to_pylist(), f.column("right").to_pylist(),
                             strict=True)}
    expected = sorted(((i, j, pairs[(i, j)]) for i, j in union),
                      key=lambda p: (-p[2], p[0], p[1]))
    chunks = list(merged_candidates(paths, batch_rows=7))
    assert len(chunks) > 5
    merged = [(i, j, s) for left, right, score in chunks
              for i, j, s in zip(left.tolist(), right.tolist(), score.tolist(), strict=True)]
    assert merged == expected


@pytest.mark.dask
def test_dask_links_two_parties_from_its_files_as_link_sets_does(dask_cluster: str,
                                                                  tmp_path) -> None:
    """Solved from the merged per-task files (a blocked run: pairs repeat across bands),
    never all candidates at once: the same links, scores, entities and statistics as the
    in-memory pipeline. (All pairs: the CLI test.)"""
    a, b = febrl4_sets()
    blocking = LshBlocking()
    backend = get_backend("dask", scheduler=dask_cluster, shared_dir=tmp_path, tile_rows=1500)
    ours = link_two_streamed([a, b], 0.7, backend, blocking=blocking)  # type: ignore[arg-type]
    theirs = link_sets([a, b], 0.7, backend=_reference(), blocking=blocking)
    for field in ("party_a", "record_a", "party_b", "record_b", "score"):
        assert getattr(ours, field).tolist() == getattr(theirs, field).tolist(), field
    assert [e.tolist() for e in ours.entity_of] == [e.tolist() for e in theirs.entity_of]
    for stat in ("candidate_pairs", "links", "pairs_total", "pairs_compared"):
        assert ours.stats[stat] == theirs.stats[stat], stat
    assert not list(tmp_path.iterdir())  # the files are removed once solved


def test_merge_sorted_gives_every_row_in_key_order_ties_included() -> None:
    """Streams sorted by (score descending, pair, left): rows with the same score in several
    streams come out by pair and left, whatever chunk they arrive in."""
    rng = np.random.default_rng(5)
    streams, rows = [], []
    for pair in range(3):
        score = rng.choice([1.0, 0.9, 0.8], 50)
        left = rng.integers(0, 20, 50)
        order = np.lexsort((left, -score))
        score, left = score[order], left[order]
        rows += [(-s, pair, x) for s, x in zip(score.tolist(), left.tolist(), strict=True)]
        streams.append([(np.full(k.stop - k.start, pair), left[k], score[k])
                        for k in (slice(0, 3), slice(3, 4), slice(4, 31), slice(31, 50))])
    merged = [(-s, p, x) for pair, left, score in merge_sorted(
        streams, lambda c: [-c[2], c[0], c[1]])
        for p, x, s in zip(pair.tolist(), left.tolist(), score.tolist(), strict=True)]
    assert merged == sorted(rows)


def _three_parties() -> list[ClkSet]:
    """FEBRL 4's two files and a third party holding exact copies of every other record of
    the first: many pairs tie at 1.0 across pairs of parties."""
    a, b = febrl4_sets()
    c = ClkSet.from_arrays(a.words[::2].view(np.uint8), [f"c{r}" for r in a.record_ids[::2]],
                           party="c")
    return [a, b, c]


@pytest.mark.dask
@pytest.mark.parametrize("case", ["dedup", "dedup-lsh", "three", "three-one-deduplicated",
                                  "three-thresholds-within"])
def test_dask_solves_deduplication_and_three_parties_from_its_files(
        dask_cluster: str, tmp_path, case: str) -> None:
    """The cluster solver fed from the merged files of every pair of parties (memory-mapped
    partners and gains, never all candidates in memory), a few hundred edges at a time: the
    same links, scores, entities and statistics as the in-memory pipeline; with thresholds of
    their own within parties too (edges then taken by gain)."""
    a, b = febrl4_sets()
    if case.startswith("dedup"):  # both halves as one party: every person twice
        sets, dedup = [ClkSet.from_arrays(np.vstack([a.words, b.words]).view(np.uint8))], [True]
    else:
        sets = _three_parties()
        dedup = {"three": [False] * 3, "three-one-deduplicated": [False, True, False],
                 "three-thresholds-within": [True] * 3}[case]
    within = [0.72, 0.75, 0.64] if case == "three-thresholds-within" else None
    blocking = LshBlocking() if case.endswith("lsh") else None
    # The oracle's kernel: the lanes kernel's pairs compared in full depend on how a tile's
    # B rows fall into groups of eight (failed on CPUs with AVX-512 VPOPCNTDQ before).
    backend = get_backend("dask", scheduler=dask_cluster, shared_dir=tmp_path, tile_rows=2500,
                          kernel="scalar")
    assert streams(backend, sets, dedup, ()) and not streams(backend, sets, dedup, (),
                                                             solver="greedy")
    ours = link_groups_streamed(sets, 0.69, backend,  # type: ignore[arg-type]
                                dedup=dedup, blocking=blocking, chunk_rows=997,
                                dedup_thresholds=within)
    theirs = link_sets(sets, 0.69, dedup=dedup, backend=_reference(), blocking=blocking,
                       dedup_thresholds=within)
    assert theirs.stats["links"] > 2000
    if within:  # else this case could not tell
        single = link_sets(sets, 0.69, dedup=dedup, backend=_reference())
        assert single.stats["links"] != theirs.stats["links"]
    for field in ("party_a", "record_a", "party_b", "record_b", "score"):
        assert getattr(ours, field).tolist() == getattr(theirs, field).tolist(), field
    assert [e.tolist() for e in ours.entity_of] == [e.tolist() for e in theirs.entity_of]
    # Not pairs_compared_in_full: it depends on the bit order, which the CPU backend may
    # change (linker.bit_order).
    for stat in ("candidate_pairs", "pairs_scored_below_threshold", "links", "pairs_total",
                 "pairs_compared"):
        assert ours.stats[stat] == theirs.stats[stat], stat
    assert not list(tmp_path.iterdir())  # candidates and the partners' maps are removed


def test_a_pair_is_reported_by_the_first_band_it_shares() -> None:
    """Pairs sharing several bands (near-copies, few bits a band) are reported by the first
    only, against keys computed band by band; the CPU backend's bands are then disjoint and
    together every blocked pair."""
    rng = np.random.default_rng(7)
    clks = random_clks(rng, 300, 256, (0.3, 0.5))
    a = ClkSet.from_arrays(clks)
    b = ClkSet.from_arrays(clks ^ np.packbits(rng.random((300, 256)) < 0.03, axis=1))
    noisy = b.words
    positions = LshBlocking(bands=6, bits_per_band=4).positions(256)
    left, right = rng.integers(0, 300, 5000), rng.integers(0, 300, 5000)
    left[:300], right[:300] = np.arange(300), np.arange(300)  # a record and its noisy copy
    shared = words_band_keys(a.words[left], positions) == words_band_keys(noisy[right],
                                                                          positions)
    first = np.where(shared.any(axis=1), shared.argmax(axis=1), -1)
    assert (shared.sum(axis=1) > 1).sum() > 100  # many pairs share several bands
    assert len(set(first[:300].tolist())) > 2  # and not always first the same one
    for band in range(6):
        found = shared[:, band]  # the pairs this band finds
        reported = reported_by_band(a.words[left[found]], noisy[right[found]], positions, band,
                                    chunk=7)
        assert reported.tolist() == (first[found] == band).tolist()
    blocking = LshBlocking(bands=6, bits_per_band=4)
    needed = min_counts(0.6, 256)
    parts = _reference()._band_parts(a, b, needed, blocking, lambda band: None)
    pairs = [(i, j) for p in parts for i, j in zip(p.left.tolist(), p.right.tolist(),
                                                   strict=True)]
    assert len(pairs) == len(set(pairs)) == len(candidate_pairs(a, b, 0.6, blocking=blocking,
                                                                backend=_reference()))


def test_band_parts_are_even_though_clk_bits_are_not() -> None:
    """A sampled CLK bit is 0 about 60% of the time, so splitting a band by the key's low
    bits would give parts of 60% and 40%; the parts come from a hash of the key."""
    rng = np.random.default_rng(1)
    bits = rng.random((200_000, 16)) < 0.4
    keys = (bits * (1 << np.arange(16))).sum(axis=1).astype(np.uint64)
    for parts in (2, 3, 13):
        shares = np.bincount(_part_of(keys, parts), minlength=parts) / len(keys)
        assert np.all(np.abs(shares - 1 / parts) < 0.02), (parts, shares)
