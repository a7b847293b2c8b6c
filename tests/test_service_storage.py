"""What the service keeps: earlier uploads no run used are pruned, a party's uploads stay
within its quota, and result pages are slices of the run's files."""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from api.client import Client, ServiceError
from api.settings import STALE_SECONDS
from tests.service_harness import (
    PARTIES,
    Service,
    database_kinds,
    project_with_uploads,
    running_service,
)


def _stored(service: Service, project_id: str, party: str) -> list[Path]:
    return sorted((service.data_dir / "uploads" / project_id / party).glob("*.parquet"))


def test_uploads_no_run_used_are_pruned(service: Service,
                                        provider_files: dict[str, Path]) -> None:
    created = project_with_uploads(service, provider_files, "prune")
    project_id = created["project"]["id"]
    with Client(service.url, created["upload_tokens"]["ehr"]) as ehr:
        ehr.upload(project_id, "ehr", provider_files["ehr"])
        assert len(_stored(service, project_id, "ehr")) == 1  # the first went: no run used it
        with Client(service.url, created["owner_token"]) as owner:
            run = owner.wait(project_id, owner.start_run(project_id, 0.8)["id"])
            used = _stored(service, project_id, "ehr")
            ehr.upload(project_id, "ehr", provider_files["ehr"])
            assert set(used) < set(_stored(service, project_id, "ehr"))  # kept: a run used it
            assert len(owner.matches(project_id, run["id"])) > 0
            uploads = owner._call("GET", f"/projects/{project_id}/uploads")
            events = [e for e in owner.audit(project_id) if e["action"] == "uploads.prune"]
    assert len(uploads) == 5 and len(events) == 1


@pytest.fixture(scope="module", params=database_kinds())
def keeper(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           provider_files: dict[str, Path]) -> Iterator[Service]:
    """Keeps every upload, with a quota of about two and a half of the ehr file."""
    quota = int(provider_files["ehr"].stat().st_size * 2.5)
    with running_service(request.param, tmp_path_factory.mktemp(f"keep-{request.param}"),
                         extra_env={"PPRL_PRUNE_UPLOADS": "false",
                                    "PPRL_PARTY_QUOTA_BYTES": str(quota)}) as live:
        yield live


def test_a_partys_uploads_stay_within_its_quota_and_admin_prune_frees_them(
        keeper: Service, provider_files: dict[str, Path]) -> None:
    created = project_with_uploads(keeper, provider_files, "quota")
    project_id = created["project"]["id"]
    with Client(keeper.url, created["upload_tokens"]["ehr"]) as ehr:
        ehr.upload(project_id, "ehr", provider_files["ehr"])
        with pytest.raises(ServiceError) as refused:
            ehr.upload(project_id, "ehr", provider_files["ehr"])
        assert refused.value.status == 413 and "storage quota" in refused.value.message
        assert len(_stored(keeper, project_id, "ehr")) == 2
        # as a `pprl serve` killed between keeping a file and committing its row leaves it,
        # a day old, and one that may still be being recorded
        orphan, recent = (keeper.data_dir / "uploads" / project_id / "ehr" / f"{n}.parquet"
                          for n in ("orphan", "recent"))
        for stored in (orphan, recent):
            stored.write_bytes(b"an upload nobody recorded")
        old = time.time() - STALE_SECONDS - 60
        os.utime(orphan, (old, old))
        pruned = keeper.pprl("admin", "prune", "--data-dir", str(keeper.data_dir)).stdout
        assert "2 upload(s) pruned" in pruned
        assert not orphan.exists() and recent.exists()
        recent.unlink()
        assert len(_stored(keeper, project_id, "ehr")) == 1
        ehr.upload(project_id, "ehr", provider_files["ehr"])  # room again


def test_result_pages_are_slices_of_the_runs_files(service: Service,
                                                   provider_files: dict[str, Path]) -> None:
    created = project_with_uploads(service, provider_files, "pages", dedup=True)
    project_id = created["project"]["id"]
    with Client(service.url, created["owner_token"]) as owner:
        run_id = owner.wait(project_id, owner.start_run(project_id, 0.75)["id"])["id"]
        folder = service.data_dir / "runs" / project_id / str(run_id)
        entities = pq.read_table(folder / "parties.parquet").to_pylist()
        for party in PARTIES:
            paged = owner.party_entities(project_id, run_id, party, page_size=97)
            assert paged == [{"record_id": e["record_id"], "entity": e["entity"]}
                             for e in entities if e["party"] == party]
        members: dict[str, list[dict[str, str]]] = defaultdict(list)
        for e in sorted(entities, key=lambda e: (e["entity"], e["party"], e["record_id"])):
            members[e["entity"]].append({"party": e["party"], "record_id": e["record_id"]})
        for min_size in (1, 2, 3):
            expected = [{"entity": k, "members": v} for k, v in sorted(members.items())
                        if len(v) >= min_size]
            assert owner.groups(project_id, run_id, min_size=min_size,
                                page_size=101) == expected
        matches = pq.read_table(folder / "matches.parquet").to_pylist()
        assert owner.matches(project_id, run_id, page_size=89) == matches


def test_a_run_written_before_the_indexes_is_paged_alike(service: Service,
                                                         provider_files: dict[str, Path]
                                                         ) -> None:
    """Runs of the earlier service hold parties.parquet alone, in link order: their first
    page builds the indexes, and pages equal a run of today's."""
    created = project_with_uploads(service, provider_files, "old run", dedup=True)
    project_id = created["project"]["id"]
    with Client(service.url, created["owner_token"]) as owner:
        run_id = owner.wait(project_id, owner.start_run(project_id, 0.75)["id"])["id"]
        folder = service.data_dir / "runs" / project_id / str(run_id)
        today = {p: pq.read_table(folder / p) for p in ("parties.parquet", "groups.parquet")}
        parties = pq.read_table(folder / "parties.parquet")
        shuffled = parties.take(np.random.default_rng(5).permutation(parties.num_rows))
        pq.write_table(shuffled, folder / "parties.parquet")
        for name in ("index.json", "groups.parquet", "group_index.parquet"):
            (folder / name).unlink()
        expected = {p: [{"record_id": e["record_id"], "entity": e["entity"]}
                        for e in parties.to_pylist() if e["party"] == p] for p in PARTIES}
        assert {p: owner.party_entities(project_id, run_id, p, page_size=97)
                for p in PARTIES} == expected
        assert len(owner.groups(project_id, run_id, min_size=2)) > 0
    assert all(pq.read_table(folder / p).equals(table) for p, table in today.items())
    assert not list(folder.glob(".*.tmp"))


def test_run_results_spare_a_later_attempts_staging_and_clean_their_own(tmp_path: Path
                                                                       ) -> None:
    """The jobs review's cases: a worker frozen past its lease (attempt 1) resumed and removed
    every `.RUN.attempt*` folder, its successor's (attempt 2) as it was being written, and the
    run failed for good; a cancelled or failed write left its staging for ever. Now only
    earlier attempts' staging is removed, an attempt that no longer holds the job publishes
    nothing, and a failed write leaves no staging."""
    from api.jobs.kinds import JobStopped
    from api.results_store import write_run_results
    from linker.clkset import ClkSet
    from linker.link import link_sets

    rng = np.random.default_rng(3)
    clks = rng.integers(0, 256, size=(20, 128), dtype=np.uint8)
    result = link_sets([ClkSet.from_arrays(clks, party="a"),
                        ClkSet.from_arrays(clks, party="b")], 0.9)
    folder = tmp_path / "runs" / "1"
    folder.parent.mkdir()
    successor = folder.with_name(".1.attempt2")
    successor.mkdir()
    (successor / "matches.parquet").write_bytes(b"being written")

    def lost() -> None:
        raise JobStopped

    with pytest.raises(JobStopped):
        write_run_results(folder, result, {}, b"k" * 32, "prj", 1, before_publish=lost)
    assert (successor / "matches.parquet").read_bytes() == b"being written"
    assert not folder.exists() and not folder.with_name(".1.attempt1").exists()
    write_run_results(folder, result, {}, b"k" * 32, "prj", 3)
    assert not successor.exists()  # an earlier attempt's: replaced
    assert (folder / "matches.parquet").is_file()
    assert sorted(p.name for p in folder.parent.iterdir()) == ["1"]


def test_a_start_removes_spooled_uploads_a_killed_service_left(tmp_path: Path) -> None:
    """The jobs review's case: `pprl serve` killed while receiving an upload left its spooled
    body (up to the upload limit) in tmp/ for ever. The next start removes those a day old,
    never one that may still be being received."""
    from api.settings import Settings

    settings = Settings.from_env(tmp_path / "data")
    settings.prepare()
    stale, fresh = settings.temp_dir / "upload-stale", settings.temp_dir / "upload-fresh"
    for spooled in (stale, fresh):
        spooled.write_bytes(b"x" * 1024)
    old = time.time() - STALE_SECONDS - 60
    os.utime(stale, (old, old))
    settings.prepare()
    assert not stale.exists() and fresh.exists()


def test_a_full_disk_fails_a_job_saying_so() -> None:
    """The jobs review's case: a run that hit a full disk (or a read-only results folder)
    failed as "an unexpected error", the cause only in the service log."""
    import errno

    from api.jobs.worker import _os_error

    full = _os_error(OSError(errno.ENOSPC, "No space left on device"), "linkage", 7)
    assert "the disk is full" in full and "free space" in full
    assert "read-only" in _os_error(OSError(errno.EROFS, "Read-only"), "cohort_export", 7)
    assert "unexpected error" in _os_error(OSError(errno.EBADF, "Bad file"), "linkage", 7)
