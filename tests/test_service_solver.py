"""The run options `solver` and the default threshold against a live `pprl serve`: each run
is solved as asked (the linker's own answer for that solver) and shows its solver, an unknown
one is a 422, and a run without a threshold gets the linker's default for its project."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from api.client import Client
from linker.clkset import load_clk_sets
from linker.link import link_sets
from tests.service_harness import PARTIES, Service, project_with_uploads

THRESHOLD = 0.7  # the default with deduplication


def _get(service: Service, path: str, token: str) -> Any:
    answer = httpx.get(service.url + path, timeout=60,
                       headers={"Authorization": f"Bearer {token}"})
    answer.raise_for_status()
    return answer.json()


def _served(owner: Client, project_id: str, run_id: int) -> list[tuple[str, str, str, str]]:
    return [(m["party_a"], m["record_a"], m["party_b"], m["record_b"])
            for m in owner.matches(project_id, run_id, page_size=1000)]


def _expected(files: dict[str, Path], solver: str) -> list[tuple[str, str, str, str]]:
    result = link_sets(load_clk_sets([files[p] for p in PARTIES]), THRESHOLD,
                       dedup=[True] * len(PARTIES), solver=solver)
    names, ids = result.parties, result.record_ids
    return [(names[pa], ids[pa][ra], names[pb], ids[pb][rb]) for pa, ra, pb, rb in zip(
        result.party_a.tolist(), result.record_a.tolist(), result.party_b.tolist(),
        result.record_b.tolist(), strict=True)]


def test_each_run_is_solved_by_its_solver(service: Service,
                                          provider_files: dict[str, Path]) -> None:
    created = project_with_uploads(service, provider_files, "solvers", dedup=True)
    project_id, token = created["project"]["id"], created["owner_token"]
    expected = {s: _expected(provider_files, s) for s in ("cluster", "greedy")}
    assert expected["cluster"] != expected["greedy"]  # else this test could not tell
    runs = {}
    for solver in ("default", "greedy"):
        chosen = () if solver == "default" else ("--solver", solver)
        runs[solver] = json.loads(service.pprl("run", project_id, *chosen, "--wait", "--json",
                                               token=token).stdout)
    assert runs["default"]["solver"] == "cluster" and runs["greedy"]["solver"] == "greedy"
    assert runs["default"]["threshold"] == runs["greedy"]["threshold"] == THRESHOLD
    with Client(service.url, token) as owner:
        assert _served(owner, project_id, runs["default"]["id"]) == expected["cluster"]
        assert _served(owner, project_id, runs["greedy"]["id"]) == expected["greedy"]
    listed = {r["id"]: r["solver"] for r in _get(service, f"/projects/{project_id}/runs", token)}
    assert listed == {runs["default"]["id"]: "cluster", runs["greedy"]["id"]: "greedy"}


def test_an_unknown_solver_is_refused_and_linkage_defaults_to_065(service: Service,
                                      provider_files: dict[str, Path]) -> None:
    created = project_with_uploads(service, provider_files, "bad solver")
    answer = httpx.post(f"{service.url}/projects/{created['project']['id']}/runs",
                        json={"threshold": THRESHOLD, "solver": "best"}, timeout=60,
                        headers={"Authorization": f"Bearer {created['owner_token']}"})
    assert answer.status_code == 422
    assert "solver" in answer.text and "cluster" in answer.text
    assert _get(service, f"/projects/{created['project']['id']}/runs",
                created["owner_token"]) == []
    with Client(service.url, created["owner_token"]) as owner:
        queued = owner.start_run(created["project"]["id"])
    assert queued["threshold"] == 0.65 and queued["solver"] == "cluster"  # no deduplication
