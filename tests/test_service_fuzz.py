"""Schemathesis against the live service's OpenAPI schema: no generated request, with or
without valid ids and credentials, gets a server error."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from api.client import Client
from tests.service_harness import (
    OPEN_POLICY,
    PARTIES,
    Service,
    project_with_uploads,
    provider_attributes,
)

# A cohort of the synthetic population that is never empty (the imaging party's records).
_COHORT = {"require": {"imaging": {"all": [{"column": "modality", "present": True}]}},
           "release": {"imaging": ["modality"]}, "as_of_year": 2026}


@pytest.fixture(scope="module")
def fuzz_target(service: Service, provider_files: dict[str, Path]) -> dict:
    """A project with a finished run and a ready cohort export, so that operations on runs
    and requests can be reached with real ids."""
    attributes = provider_attributes(provider_files["ehr"].parent)
    created = project_with_uploads(service, provider_files, "fuzz", dedup=True,
                                   risk_policy=OPEN_POLICY,
                                   attributes=attributes)
    project_id = created["project"]["id"]
    with Client(service.url, created["owner_token"]) as owner:
        run = owner.wait(project_id, owner.start_run(project_id, 0.8)["id"])
        researcher = owner.create_token(project_id, role="researcher")["token"]
        with Client(service.url, researcher) as asking:
            request = asking.request_cohort(project_id, _COHORT, "fuzzing the service", run["id"])
        owner.decide(project_id, request["id"], approve=True)
        assert owner.wait_request(project_id, request["id"])["state"] == "ready"
    return {"created": created, "project_id": project_id, "run_id": run["id"],
            "request_id": request["id"], "researcher": researcher}


def _token_for(case: schemathesis.Case, service: Service, target: dict, aim: bool) -> str:
    created = target["created"]
    params = case.path_parameters or {}
    # Half the cases aim at the real project and run, so handlers behind auth are reached.
    if params and aim:
        params["project_id"] = target["project_id"]
        if "run_id" in params:
            params["run_id"] = target["run_id"]
        if "request_id" in params:
            params["request_id"] = target["request_id"]
        if "party" in params:
            params["party"] = "ehr"
    if case.path == "/projects" or case.path.startswith("/admin"):
        return service.admin_token
    if "party" in params:
        return created["upload_tokens"][params["party"] if params["party"] in PARTIES
                                        else "ehr"]
    if case.path.endswith("/relabel"):
        return created["upload_tokens"]["imaging"]
    if case.path.endswith("/export") or (case.path.endswith("/requests")
                                         and case.method.upper() == "POST"):
        return str(target["researcher"])
    token: str = created["owner_token"]
    return token


def test_no_server_errors(service: Service, fuzz_target: dict) -> None:
    api = schemathesis.openapi.from_url(f"{service.url}/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 15
    succeeded: set[str] = set()
    cases = itertools.count()
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def no_server_error(case: schemathesis.Case) -> None:
            token = _token_for(case, service, fuzz_target, aim=next(cases) % 2 == 0)
            response = case.call_and_validate(base_url=service.url,
                                              headers={"Authorization": f"Bearer {token}"},
                                              checks=[not_a_server_error])
            if 200 <= response.status_code < 300:
                succeeded.add(f"{case.method.upper()} {case.path}")

        no_server_error()
    # The fuzzing got past authentication and validation into the handlers of every reading
    # operation (writes mostly meet validation: random party labels, random file bodies).
    reads = {f"GET {op.path}" for op in operations if op.method.upper() == "GET"}
    assert reads <= succeeded, reads - succeeded
