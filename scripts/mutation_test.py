"""Mutation testing of the modules behind the main claims, with cosmic-ray.

Each target is a module and the tests meant to catch its bugs. cosmic-ray (installed in its
own venv, ``.peers/cosmic-ray``, never in ``.venv``) lists every mutant of the module; a
seeded sample of them is run, each by mutating the file in place, running the tests and
restoring it. A mutant the tests pass is a *survivor*: a bug they would not notice.

Usage (from the repository root; it takes one to two hours with the default samples)::

    python3 scripts/mutation_test.py [--sample N] [--only MODULE ...] [--json OUT.json]

Mutating files in place would disturb anything else run from the same checkout meanwhile, so
run it from a checkout of its own (``git worktree add ../mutation HEAD``, with ``.venv``
linked there: ``ln -s "$PWD/.venv" ../mutation/.venv``, and ``NUMBA_CACHE_DIR`` pointing
into it): its tests import from that checkout (``PYTHONPATH``). Service targets run on
SQLite only. Survivors are worth reading, not all are bugs: an equivalent mutant (``cache=True``
made ``False`` on a compiled kernel) cannot be killed.

It prints each module's score (killed / run) and its survivors (operator, line), and writes
JSON. It is not part of CI: the service targets alone run the service tests once per mutant.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEER = ROOT / ".peers" / "cosmic-ray"
PYTEST = f"{ROOT / '.venv' / 'bin' / 'python'} -m pytest -x -q -p no:cacheprovider -n 0"
# module -> the tests meant to catch its bugs (fast ones: each mutant runs them once)
TARGETS = {
    "tokenizer/hashing.py": "tests/test_golden_clkhash.py",
    "tokenizer/keys.py": "tests/test_golden_clkhash.py tests/test_keys.py",
    "tokenizer/encoder.py": "tests/test_golden_clkhash.py tests/test_tokenize_inputs.py",
    "tokenizer/tokens.py": "tests/test_golden_clkhash.py tests/test_encoding_properties.py",
    "linker/solve.py": "tests/test_solve.py",
    "linker/backends/base.py": "tests/test_linker.py tests/test_backends.py -m 'not dask'",
    "deid/profile.py": "tests/test_deid_rules.py tests/test_deid_profile.py",
    "deid/transform.py": "tests/test_deid_rules.py tests/test_deid_part10.py",
    "deid/scrub.py": "tests/test_deid_rules.py tests/test_deid_verify.py",
    "linker/cohorts/counts.py": "tests/test_cohorts.py -k 'suppress or small'",
    "linker/cohorts/export.py": "tests/test_service_cohorts.py -k 'export or relabel'",
    "api/deps.py": "tests/test_service_auth.py",
    "api/jobs/queue.py": "tests/test_service_worker.py -k 'concurrent or cancel or input'",
    "api/results_store.py": "tests/test_service_worker.py tests/test_service_storage.py "
                            "-k 'killed_supervised or paged or pages'",
}
# these run the service tests once per mutant, and get half the sample
SLOW = {"api/deps.py", "api/jobs/queue.py", "api/results_store.py", "linker/cohorts/export.py"}
# Operators whose mutants are mostly equivalent here (bit shifts of flags, exception types
# swapped in handlers that re-raise, ...), left out to spend the sample on meaningful ones.
EXCLUDED_OPERATORS = [r"core/ReplaceBinaryOperator_.*_(LShift|RShift|Pow)",
                      r"core/ReplaceBinaryOperator_(LShift|RShift|Pow)_.*",
                      r"core/ExceptionReplacer", r"core/RemoveDecorator"]


def _peer_python() -> Path:
    python = PEER / "bin" / "python"
    if not python.exists():
        venv.EnvBuilder(with_pip=True).create(PEER)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "cosmic-ray==8.7.0"],
                       check=True)
    return python


def _config(module: str, tests: str, folder: Path) -> Path:
    excluded = ", ".join(f'"{pattern}"' for pattern in EXCLUDED_OPERATORS)
    config = folder / "cosmic-ray.toml"
    config.write_text(textwrap.dedent(f"""\
        [cosmic-ray]
        module-path = "{ROOT / module}"
        timeout = 600.0
        excluded-modules = []
        test-command = "{PYTEST} {tests.replace('"', "'")}"

        [cosmic-ray.distributor]
        name = "local"

        [cosmic-ray.filters.operators-filter]
        exclude-operators = [{excluded}]
        """), encoding="utf-8")
    return config


_SAMPLE_AND_REPORT = """
import json, random, sys
from cosmic_ray.work_db import use_db, WorkDB
from cosmic_ray.work_item import WorkResult, WorkerOutcome, TestOutcome
mode, session, seed, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
with use_db(session, WorkDB.Mode.open) as db:
    if mode == "sample":
        pending = sorted(db.pending_work_items, key=lambda w: w.job_id)
        keep = set(w.job_id for w in random.Random(seed).sample(pending, min(size, len(pending))))
        for item in pending:
            if item.job_id not in keep:
                db.set_result(item.job_id, WorkResult(worker_outcome=WorkerOutcome.SKIPPED))
        print(json.dumps({"mutants": len(pending), "sampled": len(keep)}))
    else:
        rows = []
        for item, result in db.completed_work_items:
            if result.worker_outcome == WorkerOutcome.SKIPPED:
                continue
            mutation = item.mutations[0]
            rows.append({"operator": mutation.operator_name, "line": mutation.start_pos[0],
                         "occurrence": mutation.occurrence,
                         "outcome": result.test_outcome.value if result.test_outcome else
                         result.worker_outcome.value})
        print(json.dumps(rows))
"""


def run_target(python: Path, module: str, tests: str, sample: int, seed: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = _config(module, tests, folder)
        session = folder / "session.sqlite"
        cosmic = [str(python), "-m", "cosmic_ray.cli"]
        subprocess.run([*cosmic, "init", str(config), str(session)], check=True, cwd=ROOT)
        subprocess.run([str(python.parent / "cr-filter-operators"), str(session),
                        str(config)], check=True, cwd=ROOT)
        counted = json.loads(subprocess.run(
            [str(python), "-c", _SAMPLE_AND_REPORT, "sample", str(session), str(seed),
             str(sample)], check=True, capture_output=True, text=True).stdout)
        started = time.monotonic()
        env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout's code, mutated
        env.pop("PPRL_TEST_DATABASE_URL", None)  # SQLite only: one service per mutant
        subprocess.run([*cosmic, "exec", str(config), str(session)], check=True, cwd=ROOT,
                       env=env)
        rows = json.loads(subprocess.run(
            [str(python), "-c", _SAMPLE_AND_REPORT, "report", str(session), "0", "0"],
            check=True, capture_output=True, text=True).stdout)
    killed = sum(r["outcome"] == "killed" for r in rows)
    survivors = [r for r in rows if r["outcome"] == "survived"]
    return {"module": module, "tests": tests, **counted, "run": len(rows), "killed": killed,
            "survived": len(survivors), "score": round(killed / len(rows), 3) if rows else None,
            "seconds": round(time.monotonic() - started), "survivors": survivors}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=30, help="mutants run per module")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", nargs="*", help="modules to run (default: all targets)")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" /
                        "mutation.json")
    args = parser.parse_args(argv)
    python = _peer_python()
    results = []
    for module, tests in TARGETS.items():
        if args.only and module not in args.only:
            continue
        print(f"== {module}: {tests}", flush=True)
        sample = max(1, args.sample // 2) if module in SLOW else args.sample
        result = run_target(python, module, tests, sample, args.seed)
        results.append(result)
        print(f"   {result['killed']}/{result['run']} killed of {result['mutants']} mutants "
              f"({result['seconds']} s)", flush=True)
        for survivor in result["survivors"]:
            print(f"   survived: line {survivor['line']} {survivor['operator']}", flush=True)
        subprocess.run(["git", "diff", "--quiet", "--", module], cwd=ROOT, check=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
