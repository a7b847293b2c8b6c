"""The run options `solver` and the default threshold against a live `pprl serve`: each run
is solved as asked (the linker's own answer for that solver) and shows its solver, a run
queued before the option existed is solved and shown as greedy, an unknown one is a 422, and
a run without a threshold gets the linker's default for its project; a run asked for
threshold `auto` gets the one the linker's estimate chooses."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from api.client import Client
from linker.clkset import load_clk_sets
from linker.link import DEFAULT_DEDUP_THRESHOLD, LinkResult, link_sets
from tests.service_harness import PARTIES, Service, make_providers, project_with_uploads

THRESHOLD = DEFAULT_DEDUP_THRESHOLD


def _get(service: Service, path: str, token: str) -> Any:
    answer = httpx.get(service.url + path, timeout=60,
                       headers={"Authorization": f"Bearer {token}"})
    answer.raise_for_status()
    return answer.json()


def _served(owner: Client, project_id: str, run_id: int) -> list[tuple[str, str, str, str]]:
    return [(m["party_a"], m["record_a"], m["party_b"], m["record_b"])
            for m in owner.matches(project_id, run_id, page_size=1000)]


def _linked(files: dict[str, Path], solver: str) -> LinkResult:
    return link_sets(load_clk_sets([files[p] for p in PARTIES]), THRESHOLD,
                     dedup=[True] * len(PARTIES), solver=solver)


def _expected(files: dict[str, Path], solver: str) -> list[tuple[str, str, str, str]]:
    return _pairs(_linked(files, solver))


def _pairs(result: LinkResult) -> list[tuple[str, str, str, str]]:
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
        runs[solver] = json.loads(service.pprl("run", project_id, *chosen, "--threshold",
                                               str(THRESHOLD), "--wait", "--json",
                                               token=token).stdout)
    assert runs["default"]["solver"] == "cluster" and runs["greedy"]["solver"] == "greedy"
    assert runs["default"]["threshold"] == runs["greedy"]["threshold"] == THRESHOLD
    with Client(service.url, token) as owner:
        assert _served(owner, project_id, runs["default"]["id"]) == expected["cluster"]
        assert _served(owner, project_id, runs["greedy"]["id"]) == expected["greedy"]
    listed = {r["id"]: r["solver"] for r in _get(service, f"/projects/{project_id}/runs", token)}
    assert listed == {runs["default"]["id"]: "cluster", runs["greedy"]["id"]: "greedy"}


def _queue_as_before_solvers(service: Service, project_id: str) -> int:
    """A linkage job inserted as the service wrote one before the `solver` option (55923ba):
    params of threshold, blocking and upload ids only."""
    engine = create_engine(service.env["PPRL_DATABASE_URL"])
    try:
        with engine.begin() as c:
            uploads = sorted(c.execute(text("SELECT id FROM uploads WHERE project_id = :p"),
                                       {"p": project_id}).scalars())
            params = {"threshold": THRESHOLD, "blocking": False, "upload_ids": uploads}
            return int(c.execute(text(
                "INSERT INTO jobs (project_id, kind, state, stage, progress, params_json, "
                "attempt, cancel_requested, created_at) VALUES (:p, 'linkage', 'queued', "
                "'queued', 0, :params, 0, false, :now) RETURNING id"),
                {"p": project_id, "params": json.dumps(params), "now": time.time()}
            ).scalar_one())
    finally:
        engine.dispose()


def test_a_run_queued_before_the_solver_option_is_solved_by_greedy(
        service: Service, provider_files: dict[str, Path]) -> None:
    created = project_with_uploads(service, provider_files, "older run", dedup=True)
    project_id, token = created["project"]["id"], created["owner_token"]
    greedy, cluster = _linked(provider_files, "greedy"), _linked(provider_files, "cluster")
    assert greedy.entity_count != cluster.entity_count  # else this test could not tell
    run_id = _queue_as_before_solvers(service, project_id)
    with Client(service.url, token) as owner:
        run = owner.wait(project_id, run_id, timeout=300)
        assert run["state"] == "done" and run["solver"] == "greedy"
        assert run["stats"]["links"] == greedy.stats["links"]
        assert run["stats"]["entities"] == greedy.entity_count
        assert _served(owner, project_id, run_id) == _pairs(greedy)
    written = service.data_dir / "runs" / project_id / str(run_id) / "run.json"
    assert json.loads(written.read_text())["solver"] == "greedy"
    assert _get(service, f"/projects/{project_id}/runs", token)[0]["solver"] == "greedy"


def test_an_unknown_solver_is_refused_and_a_run_given_no_threshold_is_estimated(
        service: Service, provider_files: dict[str, Path]) -> None:
    """A run given no threshold shows none while queued (`unset`); done, the estimate's, as
    `pprl link` given none chooses it (the providers' pairs can be fitted); in a
    deduplicating project the default 0.69, with the reason."""
    created = project_with_uploads(service, provider_files, "bad solver")
    answer = httpx.post(f"{service.url}/projects/{created['project']['id']}/runs",
                        json={"threshold": THRESHOLD, "solver": "best"}, timeout=60,
                        headers={"Authorization": f"Bearer {created['owner_token']}"})
    assert answer.status_code == 422
    assert "solver" in answer.text and "cluster" in answer.text
    assert _get(service, f"/projects/{created['project']['id']}/runs",
                created["owner_token"]) == []
    from linker.estimate import estimate_sets

    estimate = estimate_sets(load_clk_sets([provider_files[p] for p in PARTIES]))
    with Client(service.url, created["owner_token"]) as owner:
        queued = owner.start_run(created["project"]["id"])
        assert queued["threshold"] is None and queued["solver"] == "cluster"
        assert queued["threshold_choice"] == {"method": "unset"}
        run = owner.wait(created["project"]["id"], queued["id"], timeout=300)
        assert run["state"] == "done", run["error"]
        assert run["threshold"] == estimate.threshold
        assert run["threshold_choice"] == estimate.choice()
    # Deduplicating: the pairs across parties estimated, each party's within it at its
    # valley, here (1,500 people) too few pairs for one: the default, saying so.
    deduplicated = project_with_uploads(service, provider_files, "no threshold", dedup=True)
    with Client(service.url, deduplicated["owner_token"]) as owner:
        queued = owner.start_run(deduplicated["project"]["id"])
        run = owner.wait(deduplicated["project"]["id"], queued["id"], timeout=300)
    assert run["state"] == "done", run["error"]
    assert run["threshold"] == estimate_sets(load_clk_sets(
        [provider_files[p] for p in PARTIES]), one_to_one=False).threshold
    assert run["dedup_thresholds"] == {p: DEFAULT_DEDUP_THRESHOLD for p in PARTIES}
    within = run["threshold_choice"]["within"]
    assert all("too few to find it" in within[p]["reason"] for p in PARTIES)


def _post_run(service: Service, project_id: str, token: str, body: dict[str, Any]
              ) -> httpx.Response:
    return httpx.post(f"{service.url}/projects/{project_id}/runs", json=body, timeout=60,
                      headers={"Authorization": f"Bearer {token}"})


def test_threshold_auto_is_chosen_by_the_worker_as_pprl_link_chooses_it(
        service: Service, provider_files: dict[str, Path]) -> None:
    """A run asked for `auto` shows no threshold while queued; done, it shows the one the
    linker's estimate chooses for the same files, why, and the estimated quality, and its links
    are those of that threshold. Refused (422) where the CLI refuses it."""
    from linker.backends import get_backend
    from linker.estimate import estimate_sets
    from linker.threshold_choice import estimate_threshold

    created = project_with_uploads(service, provider_files, "auto threshold")
    project_id, token = created["project"]["id"], created["owner_token"]
    sets = load_clk_sets([provider_files[p] for p in PARTIES])
    estimate = estimate_sets(sets)
    with Client(service.url, token) as owner:
        queued = owner.start_run(project_id, "auto")
        assert queued["threshold"] is None and queued["threshold_choice"] == {"method": "auto"}
        run = owner.wait(project_id, queued["id"], timeout=300)
        assert run["state"] == "done", run["error"]
        assert run["threshold"] == estimate.threshold
        assert run["threshold_choice"] == {**estimate.choice(), "method": "estimated"}
        expected = _pairs(link_sets(sets, estimate.threshold))
        assert _served(owner, project_id, queued["id"]) == expected
    written = json.loads((service.data_dir / "runs" / project_id / str(queued["id"])
                          / "run.json").read_text())
    assert written["threshold"] == estimate.threshold
    assert written["threshold_choice"]["method"] == "estimated"
    shown = service.pprl("status", project_id, str(queued["id"]), token=token).stdout
    assert f"threshold {estimate.threshold} chosen from the data" in shown
    for body, refusal in (({"threshold": "auto", "blocking": True}, "all-pairs"),
                          ({"threshold": "best"}, "threshold")):
        answer = _post_run(service, project_id, token, body)
        assert answer.status_code == 422 and refusal in answer.text, answer.text
    # A deduplicating project: a threshold across parties and one within each, as `pprl link
    # --dedup all` chooses them, its links those of both.
    deduplicated = project_with_uploads(service, provider_files, "auto dedup", dedup=True)
    project_id, token = deduplicated["project"]["id"], deduplicated["owner_token"]
    chosen = estimate_threshold(sets, [True] * len(sets), get_backend("cpu"))
    with Client(service.url, token) as owner:
        queued = owner.start_run(project_id, "auto")
        run = owner.wait(project_id, queued["id"], timeout=300)
        assert run["state"] == "done", run["error"]
        assert (run["threshold"], run["dedup_thresholds"], run["threshold_choice"]) == (
            chosen.threshold, chosen.dedup_thresholds, chosen.record)
        assert _served(owner, project_id, queued["id"]) == _pairs(link_sets(
            sets, chosen.threshold, dedup=[True] * len(sets),
            dedup_thresholds=chosen.within(sets)))
    shown = service.pprl("status", project_id, str(queued["id"]), token=token).stdout
    assert "within each party: imaging 0.69 (the default: no valley)" in shown
    # The same thresholds given (`pprl run --dedup-threshold`): the same links, as given.
    given = json.loads(service.pprl(
        "run", project_id, "--threshold", str(chosen.threshold), "--dedup-threshold", "all=0.69",
        "--dedup-threshold", f"claims={chosen.dedup_thresholds['claims']}", "--wait", "--json",
        token=token).stdout)
    assert given["threshold_choice"] == {"method": "given"}
    assert given["dedup_thresholds"] == chosen.dedup_thresholds
    with Client(service.url, token) as owner:
        assert _served(owner, project_id, given["id"]) == _served(owner, project_id,
                                                                  queued["id"])
    shown = service.pprl("status", project_id, str(given["id"]), token=token).stdout
    assert "across parties, within each party: imaging 0.69, ehr 0.69, claims" in shown
    for body, refusal in (({"threshold": "auto", "dedup_thresholds": {"ehr": 0.8}},
                           "need a threshold"),
                          ({"threshold": 0.7, "dedup_thresholds": {"lab": 0.8}},
                           "unknown parties ['lab']")):
        answer = _post_run(service, project_id, token, body)
        assert answer.status_code == 422 and refusal in answer.text, answer.text
    for within in ({"ehr": 0.8}, {"all": 0.8}):  # a project that does not deduplicate
        answer = _post_run(service, created["project"]["id"], created["owner_token"],
                           {"threshold": 0.7, "dedup_thresholds": within})
        assert answer.status_code == 422 and "some deduplicated" in answer.text, answer.text


def test_one_party_deduplicated_takes_the_valley(
        service: Service, provider_files: dict[str, Path],
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """A project of one deduplicating party: a run given no threshold, or `auto`, goes to the
    valley of its pair scores as `pprl dedup` does, shows it with no precision or recall, and
    `pprl status` says so; an extract with too few pairs for a valley (1,500 people) fails
    `auto` saying so and takes the default given none; one party without deduplication
    refuses `auto` (422)."""
    from linker.dedup_valley import estimate_dedup

    claims = make_providers(tmp_path_factory.mktemp("valley"), people=3000, seed=4)["claims"]
    valley = estimate_dedup(load_clk_sets([claims])[0])
    runs = {}
    for name, upload in (("valley", claims), ("few", provider_files["ehr"])):
        with Client(service.url, service.admin_token) as admin:
            created = admin.create_project(f"one party {name}", "person", ["ehr"], True)
        project_id, token = created["project"]["id"], created["owner_token"]
        with Client(service.url, created["upload_tokens"]["ehr"]) as provider:
            provider.upload(project_id, "ehr", upload)
        with Client(service.url, token) as owner:
            runs[name] = [owner.wait(project_id, owner.start_run(project_id, asked)["id"],
                                     timeout=300) for asked in ("auto", None)]
        if name == "valley":
            shown = service.pprl("status", project_id, str(runs[name][1]["id"]),
                                 token=token).stdout
    for run in runs["valley"]:
        assert run["state"] == "done", run["error"]
        assert run["threshold"] == valley.threshold
        assert run["threshold_choice"] == valley.choice()
    assert f"threshold {valley.threshold} chosen from the data" in shown
    assert "estimates no precision or recall" in shown
    asked, unasked = runs["few"]
    assert asked["state"] == "failed"
    assert "pairs score 0.58-0.90" in asked["error"] and "give a threshold" in asked["error"]
    assert unasked["state"] == "done", unasked["error"]
    assert unasked["threshold"] == DEFAULT_DEDUP_THRESHOLD
    assert unasked["threshold_choice"]["method"] == "default"
    assert "too few to find it" in unasked["threshold_choice"]["reason"]
    with Client(service.url, service.admin_token) as admin:
        alone = admin.create_project("one party alone", "person", ["ehr"], False)
    with Client(service.url, alone["upload_tokens"]["ehr"]) as provider:
        provider.upload(alone["project"]["id"], "ehr", provider_files["ehr"])
    answer = _post_run(service, alone["project"]["id"], alone["owner_token"],
                       {"threshold": "auto"})
    assert answer.status_code == 422 and "links nothing" in answer.text
