"""Runs are jobs in the database: a worker killed with SIGKILL mid-run leaves the run to be
retried with identical results; cancellation stops queued and running runs; concurrent
workers never execute a run twice."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.client import Client, ServiceError
from linker.clkset import load_clk_sets
from linker.link import link_sets
from tests.service_harness import (
    PARTIES,
    Service,
    database_kinds,
    make_providers,
    project_with_uploads,
    running_service,
    stop_process,
    wait_for,
)

THRESHOLD = 0.8


@pytest.fixture(scope="module")
def big_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Large enough that a run lasts seconds on 2 cores, so it can be killed mid-way."""
    return make_providers(tmp_path_factory.mktemp("big"), people=20_000, seed=5)


@pytest.fixture(scope="module", params=database_kinds())
def bare_service(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[Service]:
    """A service with no worker of its own: the tests start and kill workers."""
    with running_service(request.param, tmp_path_factory.mktemp(f"bare-{request.param}"),
                         workers=0, lease_seconds=2.0,
                         extra_env={"PPRL_WORKER_SEEN_SECONDS": "3"}) as live:
        yield live


def _project(service: Service, files: dict[str, Path], dedup: bool) -> tuple[str, str]:
    created = project_with_uploads(service, files, "worker", dedup)
    return created["project"]["id"], created["owner_token"]


def _stop(worker: subprocess.Popen[bytes]) -> None:
    stop_process(worker, timeout=60)


def test_killed_worker_leaves_the_run_retried_with_identical_results(
        bare_service: Service, big_files: dict[str, Path]) -> None:
    project_id, owner_token = _project(bare_service, big_files, dedup=True)
    folder = bare_service.data_dir / "runs" / project_id
    with Client(bare_service.url, owner_token) as owner:
        run_id = owner.start_run(project_id, THRESHOLD)["id"]
        worker = bare_service.start_worker()
        wait_for(lambda: owner.run(project_id, run_id)["state"] == "running")
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        killed = owner.run(project_id, run_id)
        assert killed["state"] == "running" and killed["attempt"] == 1
        assert not (folder / str(run_id)).exists()
        with pytest.raises(ServiceError) as not_yet:
            owner.matches(project_id, run_id)
        assert not_yet.value.status == 409
        replacement = bare_service.start_worker("--poll-seconds", "0.2")
        try:
            finished = owner.wait(project_id, run_id, timeout=300)
        finally:
            _stop(replacement)
        served = [(m["party_a"], m["record_a"], m["party_b"], m["record_b"], m["score"])
                  for m in owner.matches(project_id, run_id)]
    assert finished["state"] == "done" and finished["attempt"] == 2
    assert [p.name for p in folder.iterdir()] == [str(run_id)]  # no staging left behind
    expected = link_sets(load_clk_sets([big_files[p] for p in PARTIES]), THRESHOLD,
                         dedup=[True] * 3)
    names, ids = expected.parties, expected.record_ids
    assert served == [(names[pa], ids[pa][ra], names[pb], ids[pb][rb], s)
                      for pa, ra, pb, rb, s in zip(
                          expected.party_a.tolist(), expected.record_a.tolist(),
                          expected.party_b.tolist(), expected.record_b.tolist(),
                          expected.score.tolist(), strict=True)]


def test_cancel_stops_queued_and_running_runs(bare_service: Service,
                                              big_files: dict[str, Path]) -> None:
    project_id, owner_token = _project(bare_service, big_files, dedup=True)
    with Client(bare_service.url, owner_token) as owner:
        queued = owner.start_run(project_id, THRESHOLD)["id"]
        assert owner.cancel(project_id, queued)["state"] == "cancelled"
        running = owner.start_run(project_id, THRESHOLD)["id"]
        worker = bare_service.start_worker("--poll-seconds", "0.2")
        try:
            wait_for(lambda: owner.run(project_id, running)["state"] == "running")
            owner.cancel(project_id, running)
            final = owner.wait(project_id, running, timeout=120)
        finally:
            _stop(worker)
        assert final["state"] == "cancelled"
        assert owner.run(project_id, queued)["attempt"] == 0  # never handed to a worker
    assert not (bare_service.data_dir / "runs" / project_id / str(running)).exists()


def test_a_run_claimed_while_it_is_cancelled_is_not_marked_cancelled_and_run(
        bare_service: Service, big_files: dict[str, Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The jobs review's case (PostgreSQL, 4 of 60 runs): cancel read the run as queued, a
    worker claimed it, and cancel then wrote "cancelled" over the claim; the worker ran it to
    the end. The claim is made here between cancel's read and its write: the run stays the
    worker's, asked to stop (its next progress report ends it)."""
    from sqlalchemy import create_engine, select
    from sqlalchemy.orm import sessionmaker

    from api.deps import Principal
    from api.jobs.queue import claim_job
    from api.models import Job
    from api.services import runs

    project_id, owner_token = _project(bare_service, big_files, dedup=False)
    with Client(bare_service.url, owner_token) as owner:
        run_id = owner.start_run(project_id, THRESHOLD)["id"]
    engine = create_engine(bare_service.env["PPRL_DATABASE_URL"])
    sessions = sessionmaker(engine)
    read = runs.run_or_404

    def read_then_claimed(session, project, run):  # type: ignore[no-untyped-def]
        job = read(session, project, run)
        assert job.state == "queued"
        claimed = claim_job(sessions, "racing-worker", 30.0)
        assert claimed is not None and claimed.job_id == job.id
        return job

    monkeypatch.setattr(runs, "run_or_404", read_then_claimed)
    try:
        with sessions() as session:
            shown = runs.cancel_run(session, Principal(owner_token.split("_")[1], "owner",
                                                       project_id), project_id, run_id)
        with sessions() as session:
            job = session.scalars(select(Job).where(Job.id == shown.id)).one()
            assert (job.state, job.cancel_requested, job.attempt) == ("running", True, 1)
        assert shown.state == "running"
    finally:
        with sessions.begin() as session:  # leave no running job to the next tests
            session.get(Job, shown.id).state = "cancelled"  # type: ignore[union-attr]
        engine.dispose()


def test_concurrent_workers_execute_each_run_once(bare_service: Service,
                                                  provider_files: dict[str, Path]) -> None:
    project_id, owner_token = _project(bare_service, provider_files, dedup=False)
    thresholds = (0.7, 0.75, 0.8, 0.85, 0.9)
    with Client(bare_service.url, owner_token) as owner:
        run_ids = [owner.start_run(project_id, t)["id"] for t in thresholds]
        workers = [bare_service.start_worker("--poll-seconds", "0.1") for _ in range(2)]
        try:
            finals = [owner.wait(project_id, r, timeout=300) for r in run_ids]
        finally:
            for worker in workers:
                _stop(worker)
    assert [(f["state"], f["attempt"]) for f in finals] == [("done", 1)] * len(run_ids)
    sets = load_clk_sets([provider_files[p] for p in PARTIES])
    assert [f["stats"]["links"] for f in finals] == [
        link_sets(sets, t).stats["links"] for t in thresholds]


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_serve_leaves_no_worker_behind(tmp_path: Path, how: str) -> None:
    with running_service("sqlite", tmp_path / how, workers=2) as live:
        wait_for(lambda: len(_children(live.process.pid)) >= 2, timeout=60)
        workers = _children(live.process.pid)
        if how == "SIGKILL":
            live.process.send_signal(signal.SIGKILL)
            live.process.wait()
    # SIGTERM: the context's exit stopped serve gracefully
    wait_for(lambda: not any(_alive(w) for w in workers), timeout=30)


def _workers_of(serve_pid: int) -> list[int]:
    """The worker processes of `pprl serve` (its multiprocessing children, not the resource
    tracker)."""
    found = []
    for pid in _children(serve_pid):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in command and _alive(pid):
            found.append(pid)
    return found


def _results(owner: Client, project_id: str, run_id: int) -> dict[str, object]:
    return {"matches": owner.matches(project_id, run_id),
            "groups": owner.groups(project_id, run_id, min_size=1),
            **{party: owner.party_entities(project_id, run_id, party) for party in PARTIES}}


@pytest.mark.parametrize("kind", database_kinds())
def test_a_killed_supervised_worker_is_replaced_and_its_run_completes(
        kind: str, tmp_path: Path, provider_files: dict[str, Path]) -> None:
    """The reported case: 75 s after a SIGKILL under `pprl serve`, the run was still running
    and new runs stayed queued. Now no manual step is needed. The worker is killed during
    matching, and its replacement again while the results are half staged (the service
    pauses there for this test); every result then equals an unkilled run's, and no staging
    folder is left."""
    pauses = {"PPRL_PAUSE_AT_STAGE": "matching,indexing", "PPRL_PAUSE_SECONDS": "1.5"}
    with running_service(kind, tmp_path / "svc", workers=1, lease_seconds=2.0,
                         extra_env=pauses) as live:
        project_id, owner_token = _project(live, provider_files, dedup=True)
        folder = live.data_dir / "runs" / project_id
        with Client(live.url, owner_token) as owner:
            run_id = owner.start_run(project_id, THRESHOLD)["id"]

            def kill_at(stage: str, attempt: int) -> None:
                wait_for(lambda: (owner.run(project_id, run_id)["stage"],
                                  owner.run(project_id, run_id)["attempt"]) == (stage, attempt))
                (worker,) = _workers_of(live.process.pid)
                os.kill(worker, signal.SIGKILL)
                wait_for(lambda: len(_workers_of(live.process.pid)) == 1
                         and _workers_of(live.process.pid) != [worker], timeout=15)

            kill_at("matching", 1)
            kill_at("indexing", 2)
            assert [p.name for p in folder.iterdir()] == [f".{run_id}.attempt2"]
            finished = owner.wait(project_id, run_id, timeout=300)
            assert (finished["state"], finished["attempt"]) == ("done", 3)
            killed = _results(owner, project_id, run_id)
            again = owner.wait(project_id, owner.start_run(project_id, THRESHOLD)["id"],
                               timeout=300)
            assert again["attempt"] == 1
            assert killed == _results(owner, project_id, again["id"])
        assert sorted(p.name for p in folder.iterdir()) == sorted([str(run_id),
                                                                   str(again["id"])])


def test_an_input_that_cannot_work_fails_once_and_the_worker_lives(
        service: Service, provider_files: dict[str, Path]) -> None:
    """The reported case: an exception while linking ended the worker; after three crashes
    the run failed with "its worker stopped 3 times", hiding the cause."""
    created = project_with_uploads(service, provider_files, "broken-input")
    project_id = created["project"]["id"]
    (stored,) = (service.data_dir / "uploads" / project_id / "ehr").glob("*.parquet")
    stored.write_bytes(b"PAR1 this file was damaged on the server's disk PAR1")
    with Client(service.url, created["owner_token"]) as owner:
        run = owner.wait(project_id, owner.start_run(project_id, 0.8)["id"], timeout=120)
    assert (run["state"], run["attempt"]) == ("failed", 1)
    assert run["error"].startswith("party 'ehr' upload ") and "cannot be linked" in run["error"]
    assert str(service.data_dir) not in run["error"] and "Traceback" not in run["error"]
    assert httpx.get(f"{service.url}/health", timeout=30).json()["workers_alive"] >= 1
    other = project_with_uploads(service, provider_files, "after-broken-input")
    with Client(service.url, other["owner_token"]) as owner:
        project_id = other["project"]["id"]
        after = owner.wait(project_id, owner.start_run(project_id, 0.8)["id"], timeout=120)
    assert after["state"] == "done"


def test_health_and_status_tell_a_dead_worker(bare_service: Service,
                                              big_files: dict[str, Path]) -> None:
    """/health counts live workers (503 with none), queued and running runs and the oldest
    lease; `pprl status` says when a run's lease has lapsed."""
    def health() -> tuple[int, dict]:
        answer = httpx.get(f"{bare_service.url}/health", timeout=30)
        return answer.status_code, answer.json()

    wait_for(lambda: health()[0] == 503, timeout=30)
    assert health()[1]["status"] == "no worker"
    project_id, owner_token = _project(bare_service, big_files, dedup=True)
    with Client(bare_service.url, owner_token) as owner:
        run_id = owner.start_run(project_id, THRESHOLD)["id"]
        assert health()[1]["runs_queued"] >= 1
        worker = bare_service.start_worker("--poll-seconds", "0.2")
        wait_for(lambda: owner.run(project_id, run_id)["state"] == "running")
        code, report = health()
        assert code == 200 and report["workers_alive"] == 1 and report["runs_running"] == 1
        assert report["oldest_lease_age_s"] < 2.0
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        wait_for(lambda: owner.run(project_id, run_id)["lease_expired"], timeout=30)
        status = bare_service.pprl("status", project_id, str(run_id), token=owner_token)
        assert "its worker stopped renewing the lease" in status.stdout
        wait_for(lambda: health()[0] == 503, timeout=30)
        assert health()[1]["oldest_lease_age_s"] > 2.0
        replacement = bare_service.start_worker("--poll-seconds", "0.2")
        try:
            assert owner.wait(project_id, run_id, timeout=300)["state"] == "done"
        finally:
            _stop(replacement)


def test_an_unexpected_error_fails_the_job_once_and_the_worker_goes_on(
        bare_service: Service, provider_files: dict[str, Path]) -> None:
    """The worker's catch-all: an exception no executor expects (injected: a RuntimeError on
    entering "matching", in the worker's first job) fails that job once with a message that
    shows nothing of the server, the log keeps the traceback under the message's reference,
    and the same worker process takes the next job to the end. The failed job was asked for
    `auto`: it still shows the threshold it chose before failing, and why."""
    from linker.estimate import estimate_sets

    estimate = estimate_sets(load_clk_sets([provider_files[p] for p in PARTIES]))
    project_id, owner_token = _project(bare_service, provider_files, dedup=False)
    log = bare_service.data_dir / "faulty-worker.log"
    worker = bare_service.start_worker("--poll-seconds", "0.2",
                                       env={"PPRL_FAIL_AT_STAGE": "matching"}, log=log)
    try:
        with Client(bare_service.url, owner_token) as owner:
            failed = owner.wait(project_id, owner.start_run(project_id, "auto")["id"],
                                timeout=120)
            assert worker.poll() is None
            after = owner.wait(project_id, owner.start_run(project_id, THRESHOLD)["id"],
                               timeout=120)
        assert worker.poll() is None
    finally:
        _stop(worker)
    assert (failed["state"], failed["attempt"]) == ("failed", 1)
    assert failed["threshold"] == estimate.threshold
    assert failed["threshold_choice"] == estimate.choice()
    error = failed["error"]
    assert error.startswith("an unexpected error stopped this linkage job (reference ")
    for internal in ("fault injected", "RuntimeError", "Traceback", str(bare_service.data_dir)):
        assert internal not in error
    reference = re.search(r"reference ([0-9a-f]{8})", error)
    assert reference is not None
    logged = log.read_text()
    assert f"reference {reference.group(1)}" in logged and "Traceback" in logged
    assert (after["state"], after["attempt"]) == ("done", 1)


def test_a_run_whose_candidates_would_not_fit_fails_at_once_and_the_worker_lives(
        bare_service: Service, provider_files: dict[str, Path]) -> None:
    """A worker whose runs' candidates may take 1,000 bytes (PPRL_RUN_MEMORY_BYTES; by
    default the machine's memory): a run fails once, before it compares, saying how many
    candidates it would hold and what to do, and the worker lives on (a run too large for the
    machine was killed by the system, and its worker with it)."""
    project_id, owner_token = _project(bare_service, provider_files, dedup=False)
    worker = bare_service.start_worker("--poll-seconds", "0.2",
                                       env={"PPRL_RUN_MEMORY_BYTES": "1000"})
    try:
        with Client(bare_service.url, owner_token) as owner:
            failed = owner.wait(project_id, owner.start_run(project_id, THRESHOLD)["id"],
                                timeout=120)
        assert worker.poll() is None
    finally:
        _stop(worker)
    assert (failed["state"], failed["attempt"]) == ("failed", 1)
    error = failed["error"]
    assert re.search(r"about [\d,]+ candidate pairs \(projected from a sample of records\) "
                     r"would be held in memory: about [\d.]+ GiB of the service's "
                     r"run_memory_bytes,", error), error
    assert "LSH blocking or the dask backend" in error and str(bare_service.data_dir) not in error
