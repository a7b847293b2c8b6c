"""The linker on FEBRL4 and constructed data: quality, solving rules, blocking, CLI."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from linker.backends import candidate_pairs
from linker.backends.cpu import CpuBackend
from linker.blocking import LshBlocking, blocked_pairs, blocking_quality
from linker.clkset import ClkSet, load_clk_sets
from linker.evaluate import evaluate_entities
from linker.link import DEFAULT_THRESHOLD, link_sets
from linker.results import write_results

from .linker_data import (
    febrl4_files,
    febrl4_sets,
    febrl4_true_pairs,
    febrl_person,
    random_clks,
    write_clk_set,
)


def _truth(sets: tuple[ClkSet, ...]) -> dict[tuple[str, str], str]:
    return {(s.party, r): febrl_person(r) for s in sets for r in s.record_ids}


def _entities_table(result):
    import pyarrow as pa

    rows = [(f"E{e}", p, r) for p, ids, es in zip(result.parties, result.record_ids,
                                                  result.entity_of, strict=True)
            for r, e in zip(ids, es.tolist(), strict=True)]
    return pa.table({"entity_id": [x[0] for x in rows], "party": [x[1] for x in rows],
                     "record_id": [x[2] for x in rows]})


def test_febrl4_quality_target_at_default_threshold() -> None:
    sets = febrl4_sets()
    result = link_sets(sets, DEFAULT_THRESHOLD, backend=CpuBackend(2))
    quality = evaluate_entities(_entities_table(result), _truth(sets))
    assert quality.actual == 5000
    assert quality.precision >= 0.999, quality
    assert quality.recall >= 0.995, quality


def test_results_do_not_depend_on_workers_or_tiles() -> None:
    a, b = febrl4_sets()
    one = candidate_pairs(a, b, 0.6, backend=CpuBackend(1, tile_rows=4096))
    two = candidate_pairs(a, b, 0.6, backend=CpuBackend(2, tile_rows=37))
    for field in ("left", "right", "score"):
        assert np.array_equal(getattr(one, field), getattr(two, field))


@pytest.mark.parametrize("kernel", ["scalar", "lanes"])
@pytest.mark.parametrize("size", [1, 7, 8, 9, 300])
def test_pairs_within_one_set_are_every_pair_reaching_the_threshold(kernel: str,
                                                                    size: int) -> None:
    """Brute force over all pairs of random CLKs with empty rows, exact and noisy copies;
    sizes around the eight rows of a lane group."""
    rng = np.random.default_rng(size)
    copied = size // 4
    base = random_clks(rng, size - 2 * copied, 512, (0.05, 0.6), zero_rows=min(size, 2))
    noisy = base[:copied] ^ np.packbits(rng.random((copied, 512)) < 0.04, axis=1)
    clks = np.vstack([base, base[:copied], noisy])[rng.permutation(size)]
    pops = np.bitwise_count(clks).sum(axis=1).astype(np.int64)
    common = np.bitwise_count(clks[:, None, :] & clks[None, :, :]).sum(axis=2)
    for threshold in (0.0, 0.5, 0.8, 1.0):
        with np.errstate(invalid="ignore", divide="ignore"):
            dice = np.where(pops[:, None] + pops[None, :] > 0,
                            2.0 * common / (pops[:, None] + pops[None, :]), 0.0)
        left, right = np.nonzero(np.triu(dice >= threshold, k=1))
        found = candidate_pairs(ClkSet.from_arrays(clks), None, threshold,
                                backend=CpuBackend(2, tile_rows=5, kernel=kernel))
        assert sorted(zip(found.left.tolist(), found.right.tolist(), strict=True)) == sorted(
            zip(left.tolist(), right.tolist(), strict=True)), threshold
        assert np.array_equal(found.score, dice[found.left, found.right])


@pytest.mark.parametrize(("cpu", "features"), [
    ("generic", ""), ("haswell", "+avx2,+popcnt"), ("icelake-server", "+avx512f,+avx512vpopcntdq")])
def test_auto_kernel_is_lanes_whatever_the_cpu(cpu: str, features: str) -> None:
    """Without a vector popcount the lanes kernel's table lookup still beats the scalar
    kernel (measured: ``linker.dice_lanes``), which was auto's choice there before."""
    env = {**os.environ, "NUMBA_CPU_NAME": cpu, "NUMBA_CPU_FEATURES": features}
    chosen = subprocess.run(
        [sys.executable, "-c", "from linker.backends.cpu import CpuBackend; "
                               "print(CpuBackend().kernel)"],
        env=env, capture_output=True, text=True, check=True, timeout=120)
    assert chosen.stdout.strip() == "lanes"


def test_linking_starts_numba_without_scipy() -> None:
    """The CPU backend makes numba's first compiled call itself, with scipy refused (numba
    imports scipy.linalg there only to look for BLAS: 0.2 s of every `pprl link`); the
    candidates are still exact, and scipy still imports afterwards."""
    code = ("import sys\n"
            "import numpy as np\n"
            "from linker.backends.cpu import CpuBackend\n"
            "from linker.clkset import ClkSet\n"
            "rng = np.random.default_rng(1)\n"
            "clks = rng.integers(0, 256, (300, 128), dtype=np.uint8)\n"
            "clks[150:] = clks[:150] & rng.integers(0, 256, (150, 128), dtype=np.uint8) "
            "| clks[:150]\n"
            "s = ClkSet.from_arrays(clks)\n"
            "found = CpuBackend(2).candidates(s, s, 0.9)\n"
            "print('scipy.linalg' in sys.modules)\n"
            "bits = np.unpackbits(clks, axis=1).astype(np.int64)\n"
            "pops = bits.sum(1)\n"
            "dice = 2.0 * (bits @ bits.T) / (pops[:, None] + pops[None, :])\n"
            "print(sorted(zip(found.left.tolist(), found.right.tolist())) == "
            "sorted(zip(*map(list, np.nonzero(dice >= 0.9)))))\n"
            "import scipy.linalg\n"
            "print(scipy.linalg.det([[3.0]]))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=300, cwd=Path(__file__).parent.parent)
    assert done.stdout.split() == ["False", "True", "3.0"], done.stderr[-2000:]


def test_unknown_kernel_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown kernel 'gpu'"):
        CpuBackend(kernel="gpu")


def test_lsh_blocking_pair_completeness_and_reduction_are_measured() -> None:
    a, b = febrl4_sets()
    quality = blocking_quality(a, b, febrl4_true_pairs(), LshBlocking())
    assert quality.true_pairs == 5000
    assert quality.pair_completeness >= 0.93, quality
    assert quality.reduction_ratio >= 0.99, quality
    blocked = candidate_pairs(a, b, 0.8, blocking=LshBlocking())
    full = candidate_pairs(a, b, 0.8)
    full_pairs = set(zip(full.left.tolist(), full.right.tolist(), strict=True))
    assert set(zip(blocked.left.tolist(), blocked.right.tolist(), strict=True)) <= full_pairs
    assert blocked.compared < 0.01 * blocked.total


@pytest.mark.parametrize("within", [False, True], ids=["across", "within"])
def test_blocked_candidates_are_the_blocked_pairs_reaching_the_threshold(within: bool) -> None:
    """The compiled band kernel against the plain definition: every pair sharing a band
    (listed by numpy), kept if the all-pairs search finds it, with the same score."""
    a, b = febrl4_sets()
    other = None if within else b
    blocked = candidate_pairs(a, other, 0.7, blocking=LshBlocking(), backend=CpuBackend(2))
    left, right = blocked_pairs(a, other, LshBlocking())
    sharing = set(zip(left.tolist(), right.tolist(), strict=True))
    full = candidate_pairs(a, other, 0.7)
    expected = {(i, j, s) for i, j, s in zip(full.left.tolist(), full.right.tolist(),
                                             full.score.tolist(), strict=True)
                if (i, j) in sharing}
    assert expected
    assert set(zip(blocked.left.tolist(), blocked.right.tolist(), blocked.score.tolist(),
                   strict=True)) == expected


def test_multi_party_entities_hold_one_record_per_party() -> None:
    rng = np.random.default_rng(11)
    base = random_clks(rng, 300, 1024, (0.3, 0.45))
    parties = []
    for k, noise in enumerate((0.0, 0.03, 0.06)):
        copy = base ^ np.packbits(rng.random((300, 1024)) < noise, axis=1)
        keep = rng.random(300) < 0.8  # each party holds 80% of the people
        parties.append(ClkSet.from_arrays(copy[keep], [f"{k}-{i}" for i in np.flatnonzero(keep)],
                                          party=f"p{k}"))
    result = link_sets(parties, 0.75)
    for entity in range(result.entity_count):
        members = [p for p, es in enumerate(result.entity_of) for e in es.tolist()
                   if e == entity]
        assert len(members) == len(set(members))
    truth = {(s.party, r): r.split("-")[1] for s in parties for r in s.record_ids}
    quality = evaluate_entities(_entities_table(result), truth)
    assert quality.precision > 0.99 and quality.recall > 0.97


def test_deduplication_finds_planted_duplicates() -> None:
    rng = np.random.default_rng(5)
    people = random_clks(rng, 400, 1024, (0.3, 0.45))
    dupes = rng.choice(400, 60, replace=False)
    copies = people[dupes] ^ np.packbits(rng.random((60, 1024)) < 0.02, axis=1)
    clks = np.vstack([people, copies])
    ids = [f"r{i}" for i in range(400)] + [f"d{i}" for i in dupes.tolist()]
    single = ClkSet.from_arrays(clks, ids, party="clinic")
    result = link_sets([single], 0.8, dedup=[True])
    entity = result.entity_of[0]
    assert result.entity_count == 400
    for k, person in enumerate(dupes.tolist()):
        assert entity[400 + k] == entity[person]


def test_same_inputs_same_outputs(tmp_path) -> None:
    sets = febrl4_sets()
    outputs = []
    for run in range(2):
        folder = tmp_path / f"run{run}"
        write_results(folder, link_sets(sets, 0.7), {"threshold": 0.7})
        outputs.append(((folder / "matches.parquet").read_bytes(),
                        (folder / "entities.parquet").read_bytes()))
    assert outputs[0] == outputs[1]


def test_results_files_hold_each_record_id_party_and_entity(tmp_path: Path) -> None:
    """The result columns, gathered in bulk from Arrow's buffers, are those of a row-by-row
    construction: record ids of any length and script (an empty one too), three parties,
    entity ids zero-padded to six digits; an empty run writes empty files."""
    from linker.link import LinkResult
    from linker.results import read_entities, read_matches

    ids = [["r1", "", "Zoë-ß"], ["長い記録番号", "b2"], ["c"]]
    result = LinkResult(
        parties=["ehr", "pacs", "é"], record_ids=ids,
        party_a=np.array([0, 0, 1]), record_a=np.array([2, 0, 1]),
        party_b=np.array([1, 2, 2]), record_b=np.array([0, 0, 0]),
        score=np.array([0.9, 0.85, 0.8]),
        entity_of=[np.array([0, 1, 2]), np.array([2, 3]), np.array([2])])
    write_results(tmp_path / "run", result, {})
    matches = read_matches(tmp_path / "run").to_pylist()
    assert matches == [
        {"party_a": "ehr", "record_a": "Zoë-ß", "party_b": "pacs", "record_b": "長い記録番号",
         "score": 0.9},
        {"party_a": "ehr", "record_a": "r1", "party_b": "é", "record_b": "c", "score": 0.85},
        {"party_a": "pacs", "record_a": "b2", "party_b": "é", "record_b": "c", "score": 0.8}]
    entities = read_entities(tmp_path / "run").to_pylist()
    assert entities == [{"entity_id": f"E{e:06d}", "party": party, "record_id": record}
                        for party, records, numbers in zip(["ehr", "pacs", "é"], ids,
                                                           [[0, 1, 2], [2, 3], [2]],
                                                           strict=True)
                        for record, e in zip(records, numbers, strict=True)]
    nothing = LinkResult(["a"], [[]], *(np.zeros(0, np.int64) for _ in range(4)),
                         np.zeros(0), [np.zeros(0, np.int64)])
    write_results(tmp_path / "empty", nothing, {})
    assert read_matches(tmp_path / "empty").num_rows == 0
    assert read_entities(tmp_path / "empty").num_rows == 0


def test_empty_inputs_give_empty_results() -> None:
    empty = ClkSet.from_arrays(np.zeros((0, 128), np.uint8), party="x")
    a, _ = febrl4_sets()
    result = link_sets([empty, a], 0.8)
    assert len(result.score) == 0 and len(result.entity_of[0]) == 0
    assert result.entity_count == len(a)


# --- CLI -------------------------------------------------------------------------------

def pprl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "api.cli", *args], capture_output=True,
                            text=True, timeout=300)
    if check and result.returncode:
        raise AssertionError(f"{args} failed:\n{result.stdout}\n{result.stderr}")
    return result


def test_cli_link_evaluate_and_dedup(tmp_path) -> None:
    fa, fb, truth = febrl4_files(tmp_path)
    out = tmp_path / "out"
    linked = pprl("link", str(fa), str(fb), "-o", str(out))
    assert "links" in linked.stdout and "pairs/s" in linked.stdout
    matches = pq.read_table(out / "matches.parquet")
    assert matches.column_names == ["party_a", "record_a", "party_b", "record_b", "score"]
    entities = pq.read_table(out / "entities.parquet")
    assert entities.column_names == ["entity_id", "party", "record_id"]
    assert entities.num_rows == 10000
    report = json.loads(pprl("evaluate", str(out), "--truth", str(truth), "--json").stdout)
    assert report["precision"] >= 0.999 and report["recall"] >= 0.995
    assert (out / "quality.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = pprl("evaluate", str(out), "--truth", str(truth)).stdout
    assert "precision" in text and "recall" in text and "F1" in text
    for kernel in ("scalar", "lanes"):
        deduped = pprl("dedup", str(fa), "-o", str(tmp_path / kernel), "--threshold", "0.65",
                       "--kernel", kernel)
        assert "entities" in deduped.stdout
        run = json.loads((tmp_path / kernel / "run.json").read_text())
        assert (run["backend"], run["kernel"]) == ("cpu", kernel)
    scalar, lanes = (pq.read_table(tmp_path / k / "matches.parquet") for k in ("scalar", "lanes"))
    assert scalar.num_rows > 0 and scalar.equals(lanes)


def test_cli_refuses_mismatched_inputs(tmp_path) -> None:
    a, b = febrl4_sets()
    fa = write_clk_set(tmp_path / "a.parquet", a)
    other = write_clk_set(tmp_path / "other.parquet", b, fingerprint="0" * 64)
    result = pprl("link", str(fa), str(other), "-o", str(tmp_path / "o"), check=False)
    assert result.returncode == 1
    assert "a.parquet" in result.stderr and "other.parquet" in result.stderr
    assert "same schema" in result.stderr
    short = write_clk_set(tmp_path / "short.parquet", b, length=512)
    result = pprl("link", str(fa), str(short), "-o", str(tmp_path / "o"), check=False)
    assert result.returncode == 1 and "l=512" in result.stderr and "l=1024" in result.stderr
    assert not (tmp_path / "o").exists()
    one = pprl("link", str(fa), "-o", str(tmp_path / "o"), check=False)
    assert one.returncode == 2 and "at least two" in one.stderr


def test_a_clkhash_json_file_first_lets_no_other_schema_through(tmp_path) -> None:
    """The reported case: clkhash JSON records no schema, and given first it turned the
    schema check off for every other input (run.json's schema_fingerprint null)."""
    a, b = febrl4_sets()
    plain = tmp_path / "first.json"
    plain.write_text(json.dumps({"clks": [base64.b64encode(row.tobytes()).decode()
                                          for row in a.words[:50]]}))
    fa = write_clk_set(tmp_path / "a.parquet", a)
    other = write_clk_set(tmp_path / "other.parquet", b, fingerprint="0" * 64)
    result = pprl("link", str(plain), str(fa), str(other), "-o", str(tmp_path / "o"),
                  check=False)
    assert result.returncode == 1 and "same schema" in result.stderr
    assert "a.parquet" in result.stderr and "other.parquet" in result.stderr
    pprl("link", str(plain), str(fa), "-o", str(tmp_path / "ok"), "--threshold", "0.9")
    run = json.loads((tmp_path / "ok" / "run.json").read_text())
    assert run["schema_fingerprint"] == a.fingerprint and run["l"] == 1024
    empty = tmp_path / "empty.json"  # refused as of l=0 before
    empty.write_text('{"clks": []}')
    linked = pprl("link", str(empty), str(fa), "-o", str(tmp_path / "e"), "--threshold", "0.9")
    assert "empty.json holds no records" in linked.stderr
    odd = write_clk_set(tmp_path / "odd.parquet", a, length=1000)  # not whole 64-bit words
    sized = load_clk_sets([empty, odd])
    assert sized[0].length == 1000 and sized[0].words.shape == (0, sized[1].words.shape[1])


def test_an_output_folder_that_cannot_be_written_is_refused_first(tmp_path) -> None:
    """The reported case: `-o afile/sub` ran the whole linkage, then failed with a
    NotADirectoryError traceback."""
    a, b = febrl4_sets()
    fa, fb = write_clk_set(tmp_path / "a.parquet", a), write_clk_set(tmp_path / "b.parquet", b)
    (tmp_path / "afile").write_text("")
    result = pprl("link", str(fa), str(fb), "-o", str(tmp_path / "afile" / "sub"), check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "afile is a file, not a folder" in result.stderr
    assert "pairs" not in result.stdout  # refused before linking


def test_token_value_cap_without_tokens_is_refused(tmp_path) -> None:
    """It was accepted and ignored (nothing recorded it)."""
    a, b = febrl4_sets()
    fa, fb = write_clk_set(tmp_path / "a.parquet", a), write_clk_set(tmp_path / "b.parquet", b)
    result = pprl("link", str(fa), str(fb), "-o", str(tmp_path / "o"), "--token-value-cap",
                  "3", check=False)
    assert result.returncode == 2 and "--token-value-cap needs --tokens" in result.stderr


def test_evaluate_names_a_bad_plot_path_or_run_file(tmp_path) -> None:
    """The reported cases: tracebacks (FileNotFoundError, JSONDecodeError)."""
    fa, fb, truth = febrl4_files(tmp_path)
    out = tmp_path / "out"
    pprl("link", str(fa), str(fb), "-o", str(out), "--threshold", "0.9")
    bad_plot = pprl("evaluate", str(out), "--truth", str(truth), "--plot",
                    str(tmp_path / "nodir" / "q.png"), check=False)
    assert bad_plot.returncode == 1 and "Traceback" not in bad_plot.stderr
    assert "nodir is no folder" in bad_plot.stderr
    (out / "run.json").write_text((out / "run.json").read_text()[:100])
    cut = pprl("evaluate", str(out), "--truth", str(truth), check=False)
    assert cut.returncode == 1 and "Traceback" not in cut.stderr
    assert "run.json cannot be read as JSON" in cut.stderr


@pytest.mark.parametrize("command", ["link", "dedup", "evaluate"])
def test_linker_commands_have_help(command: str) -> None:
    assert f"Usage: pprl {command}" in pprl(command, "--help").stdout


def test_evaluate_refuses_a_truth_file_of_other_parties(tmp_path) -> None:
    """The reported case: truth labels not in the run printed precision 0, recall 1,
    exit 0."""
    a, b = febrl4_sets()
    fa, fb = write_clk_set(tmp_path / "a.parquet", a), write_clk_set(tmp_path / "b.parquet", b)
    out = tmp_path / "out"
    pprl("link", str(fa), str(fb), "-o", str(out))
    truth = tmp_path / "truth.csv"
    truth.write_text("party,record_id,true_id\n" + "".join(
        f"{p},{r},{febrl_person(r)}\n" for s, p in ((a, "left"), (b, "right"))
        for r in s.record_ids))
    result = pprl("evaluate", str(out), "--truth", str(truth), check=False)
    assert result.returncode == 1 and "precision" not in result.stdout
    assert "['a', 'b']" in result.stderr and "['left', 'right']" in result.stderr


def test_evaluate_refuses_a_truth_that_names_none_of_a_partys_records(tmp_path) -> None:
    """The new user's case: after `pprl deid` the imaging records are named by pseudonyms,
    which the synthetic truth does not know; evaluate printed precision 0.45 without a word.
    A truth missing only some records of a party is warned about."""
    a, b = febrl4_sets()
    fa, fb = write_clk_set(tmp_path / "a.parquet", a), write_clk_set(tmp_path / "b.parquet", b)
    out = tmp_path / "out"
    pprl("link", str(fa), str(fb), "-o", str(out), "--threshold", "0.9")
    renamed = tmp_path / "renamed.csv"
    renamed.write_text("party,record_id,true_id\n" + "".join(
        f"{s.party},{'x-' + r if s.party == 'b' else r},{febrl_person(r)}\n"
        for s in (a, b) for r in s.record_ids))
    refused = pprl("evaluate", str(out), "--truth", str(renamed), check=False)
    assert refused.returncode == 1 and "precision" not in refused.stdout
    assert "names none of party b's 5,000 records" in refused.stderr
    assert "pprl synth-truth" in refused.stderr
    partial = tmp_path / "partial.csv"
    partial.write_text("party,record_id,true_id\n" + "".join(
        f"{s.party},{r},{febrl_person(r)}\n" for s in (a, b) for r in s.record_ids[:4000]))
    warned = pprl("evaluate", str(out), "--truth", str(partial))
    assert "names 4,000 of party a's 5,000 records" in warned.stderr
    assert "precision" in warned.stdout


def test_empty_inputs_warn_and_all_empty_fails(tmp_path) -> None:
    """The reported case: linking 0-record files exited 0 silently."""
    a, _ = febrl4_sets()
    fa = write_clk_set(tmp_path / "a.parquet", a)
    empty = ClkSet.from_arrays(np.zeros((0, 128), np.uint8), [], length=1024, party="empty",
                               fingerprint=a.fingerprint)
    fe = write_clk_set(tmp_path / "empty.parquet", empty)
    fe2 = write_clk_set(tmp_path / "empty2.parquet", replace(empty, party="empty2"))
    linked = pprl("link", str(fa), str(fe), "-o", str(tmp_path / "one"))
    assert "empty.parquet holds no records" in linked.stderr
    both = pprl("link", str(fe), str(fe2), "-o", str(tmp_path / "none"), check=False)
    assert both.returncode == 1 and "every input is empty" in both.stderr
    assert not (tmp_path / "none").exists()
    alone = pprl("dedup", str(fe), "-o", str(tmp_path / "dedup"), check=False)
    assert alone.returncode == 1 and "nothing to dedup" in alone.stderr


def test_an_empty_input_leaves_the_estimated_threshold_as_it_was(tmp_path) -> None:
    """The reported case: an empty party "takes part in no link", yet its pairs made the
    estimate fail (too few records with two candidates) and the run took the default."""
    a, b = febrl4_sets()
    fa, fb = write_clk_set(tmp_path / "a.parquet", a), write_clk_set(tmp_path / "b.parquet", b)
    empty = ClkSet.from_arrays(np.zeros((0, 128), np.uint8), [], length=1024, party="empty",
                               fingerprint=a.fingerprint)
    fe = write_clk_set(tmp_path / "empty.parquet", empty)
    runs = []
    for name, files in (("two", (fa, fb)), ("three", (fe, fa, fb))):
        pprl("link", *map(str, files), "-o", str(tmp_path / name))
        runs.append(json.loads((tmp_path / name / "run.json").read_text()))
    assert runs[1]["threshold_choice"]["method"] == "estimated"
    assert runs[1]["threshold"] == runs[0]["threshold"]
    assert runs[1]["threshold_choice"] == runs[0]["threshold_choice"]


def test_placeholder_and_blank_records_are_reported(tmp_path) -> None:
    """Records holding only a sex (an unknown patient, say) get one CLK whoever they are and
    linked at Dice 1.0 without a word; a row with every field blank was counted among the
    encodings though its CLK links with nothing. Both are now said (results unchanged)."""
    secret = tmp_path / "secret"
    secret.write_bytes(b"a linkage secret of the test, 32b")
    header = "record_id,given_name,surname,date_of_birth,sex,address,zip,phone\n"
    people = {"ehr": [f"e{i},ann{i},lee{i},19{50 + i}-01-02,f,{i} elm st,62704,"
                      for i in range(20)],
              "claims": [f"c{i},ann{i},lee{i},19{50 + i}-01-02,f,{i} elm st,62704,"
                         for i in range(20)]}
    people["ehr"] += [f"u{i},,,,f,,," for i in range(8)] + [",,,,,,,".replace(",", "b0,", 1)]
    people["claims"] += [f"v{i},,,,f,,," for i in range(5)]
    files = {}
    for party, rows in people.items():
        source = tmp_path / f"{party}.csv"
        source.write_text(header + "\n".join(rows) + "\n")
        files[party] = tmp_path / f"{party}.clks.parquet"
        made = pprl("tokenize", str(source), "--schema", "person", "--secret-file",
                    str(secret), "--id-column", "record_id", "--provider", party, "-o",
                    str(files[party]))
        blank = "1 record(s) hold no identifier" in made.stderr
        assert blank == (party == "ehr"), made.stderr
    linked = pprl("link", str(files["ehr"]), str(files["claims"]), "-o", str(tmp_path / "o"),
                  "--threshold", "0.8")
    assert "1 CLK value(s) are each held by more than 10 records (13 records" in linked.stderr
    assert "1 record(s) have an empty CLK" in linked.stderr
    run = json.loads((tmp_path / "o" / "run.json").read_text())
    assert run["shared_clks"] == {"most": 10, "values": 1, "records": 13, "empty": 1}
    swapped = pprl("link", str(files["claims"]), str(files["ehr"]), "-o", str(tmp_path / "q"),
                 "--threshold", "0.8")  # the same in any order
    assert swapped.stderr.count("held by more than 10 records") == 1


def test_shared_clks_are_counted_exactly() -> None:
    """The diff review's case: a row hash that summed word x odd multiplier let the top bits
    of two words cancel, so 12 different CLKs counted as one value shared 12 times."""
    from linker.clkset import pack_words
    from linker.shared_clks import shared_clks

    rng = np.random.default_rng(2)
    base = rng.integers(0, 256, size=128, dtype=np.uint8)
    words = pack_words(np.tile(base, (12, 1))).copy()
    for i in range(12):  # each row differs from the base in the top bit of two words
        for word in (i % 16, (i + 1) % 16):
            words[i, word] ^= np.uint64(1) << np.uint64(63)
    different = ClkSet.from_arrays(words.view(np.uint8))
    assert (shared_clks([different]).values, shared_clks([different]).records) == (0, 0)
    same = ClkSet.from_arrays(np.concatenate([np.tile(base, (11, 1)), words.view(np.uint8)]))
    assert (shared_clks([same]).values, shared_clks([same]).records) == (1, 11)


@pytest.mark.parametrize("kernel", ["scalar", "lanes"])
def test_pair_counts_and_progress_add_up(kernel: str) -> None:
    """The statistics `pprl link` reports (run.json) and the progress it shows: every pair
    counted once, compared pairs among them, completed among those; progress reaches the
    number of rows, with and without a second set and blocking."""
    rng = np.random.default_rng(11)
    a = ClkSet.from_arrays(random_clks(rng, 130, 512, (0.2, 0.5)))
    b = ClkSet.from_arrays(random_clks(rng, 90, 512, (0.2, 0.5)))
    for other, blocking in ((b, None), (None, None), (b, LshBlocking())):
        done: list[int] = []
        found = candidate_pairs(a, other, 0.6, backend=CpuBackend(2, tile_rows=16,
                                                                  kernel=kernel),
                                blocking=blocking, progress=done.append)
        total = 130 * 90 if other is not None else 130 * 129 // 2
        assert found.total == total
        assert 0 < found.completed <= found.compared <= total
        assert sum(done) == 130
    assert 0.0 <= found.pruned_share < 1.0
