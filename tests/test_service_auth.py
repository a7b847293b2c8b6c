"""Every endpoint, called with no token, broken tokens and every wrong role, answers 401 or
403; the right roles get through. The table below is the access policy, written from the
issue, not read from the code; it must name every operation the service publishes."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from api.client import Client
from api.routers.error_bodies import ErrorBody
from tests.service_harness import (
    OPEN_POLICY,
    PARTIES,
    Service,
    project_with_uploads,
    provider_attributes,
)

# (method, path) -> (roles allowed, the success status they get); "upload:ehr" = the ehr
# party's upload token, etc.
POLICY: dict[tuple[str, str], tuple[set[str], int]] = {
    ("POST", "/projects"): ({"admin"}, 201),
    ("GET", "/projects/{project_id}"): (
        {"owner", "upload:ehr", "upload:imaging", "reader:ehr", "reader:imaging",
         "researcher", "auditor"}, 200),
    ("GET", "/projects/{project_id}/schema"): (
        {"owner", "upload:ehr", "upload:imaging", "reader:ehr", "reader:imaging",
         "researcher", "auditor"}, 200),
    ("GET", "/projects/{project_id}/tokens"): ({"owner"}, 200),
    ("POST", "/projects/{project_id}/tokens"): ({"owner"}, 201),
    ("DELETE", "/projects/{project_id}/tokens/{token_id}"): ({"owner"}, 200),
    ("GET", "/admin/tokens"): ({"admin"}, 200),
    ("DELETE", "/admin/tokens/{token_id}"): ({"admin"}, 200),
    ("PUT", "/projects/{project_id}/parties/{party}/encodings"): ({"upload:ehr"}, 201),
    ("GET", "/projects/{project_id}/uploads"): ({"owner"}, 200),
    ("POST", "/projects/{project_id}/runs"): ({"owner"}, 201),
    ("GET", "/projects/{project_id}/runs"): ({"owner"}, 200),
    ("GET", "/projects/{project_id}/runs/{run_id}"): ({"owner"}, 200),
    ("POST", "/projects/{project_id}/runs/{run_id}/cancel"): ({"owner"}, 200),
    ("GET", "/projects/{project_id}/runs/{run_id}/matches"): ({"owner"}, 200),
    ("GET", "/projects/{project_id}/runs/{run_id}/groups"): ({"owner"}, 200),
    ("GET", "/projects/{project_id}/runs/{run_id}/parties/{party}/entities"): (
        {"owner", "upload:ehr", "reader:ehr"}, 200),
    ("GET", "/projects/{project_id}/audit"): ({"owner", "auditor"}, 200),
    ("GET", "/projects/{project_id}/audit/head"): ({"owner", "auditor"}, 200),
    ("PUT", "/projects/{project_id}/parties/{party}/attributes"): ({"upload:ehr"}, 201),
    ("GET", "/projects/{project_id}/cohorts/catalog"): ({"owner", "researcher"}, 200),
    ("POST", "/projects/{project_id}/cohorts/count"): ({"owner", "researcher"}, 200),
    ("POST", "/projects/{project_id}/requests"): ({"researcher"}, 201),
    ("GET", "/projects/{project_id}/requests"): ({"owner", "researcher", "auditor"}, 200),
    ("GET", "/projects/{project_id}/requests/{request_id}"): (
        {"owner", "researcher", "auditor"}, 200),
    ("POST", "/projects/{project_id}/requests/{request_id}/approve"): ({"owner"}, 200),
    ("POST", "/projects/{project_id}/requests/{request_id}/reject"): ({"owner"}, 200),
    ("GET", "/projects/{project_id}/requests/{request_id}/export"): ({"researcher"}, 200),
    # only a party holding objects with UIDs (imaging) gets a relabel table: no other party
    # learns which of its records are in a cohort
    ("GET", "/projects/{project_id}/requests/{request_id}/relabel"): ({"upload:imaging"}, 200),
    ("PUT", "/projects/{project_id}/risk-policy"): ({"owner"}, 200),
    ("POST", "/projects/{project_id}/requests/{request_id}/generalise"): ({"owner"}, 200),
    ("GET", "/projects/{project_id}/requests/{request_id}/risk-reports"): (
        {"owner", "auditor"}, 200),
    ("POST", "/projects/{project_id}/requests/{request_id}/risk-reports"): (
        {"owner", "auditor"}, 202),
}
# A cohort every party holds part of.
EVERYONE = {"require": {"ehr": {"all": [{"column": "diagnosis", "present": True}]},
                        "claims": {"all": [{"column": "procedure", "present": True}]}},
            "release": {"ehr": ["diagnosis"]}}
PUBLIC = {("GET", "/health"), ("GET", "/docs"), ("GET", "/openapi.json")}


@pytest.fixture(scope="module")
def world(service: Service, provider_files: dict[str, Path]) -> dict:
    """Two projects; the first with uploads, a finished run and a reader token."""
    attributes = provider_attributes(provider_files["ehr"].parent)
    first = project_with_uploads(service, provider_files, "auth", attributes=attributes,
                                 risk_policy=OPEN_POLICY)
    with Client(service.url, service.admin_token) as admin:
        second = admin.create_project("auth-other", "person", list(PARTIES))
    project_id = first["project"]["id"]
    with Client(service.url, first["owner_token"]) as owner:
        run = owner.wait(project_id, owner.start_run(project_id, 0.8)["id"])
        reader = owner.create_reader_token(project_id, "ehr")["token"]
        # the party-scoped operations below all name ehr: another party's reader and
        # upload token must be refused every one of them
        other_reader = owner.create_reader_token(project_id, "imaging")["token"]
        disposable = owner.create_token(project_id, "claims", label="revoked by the test")
        researcher = owner.create_token(project_id, role="researcher")["token"]
        auditor = owner.create_token(project_id, role="auditor")["token"]
    with Client(service.url, researcher) as asking:
        requests = {what: asking.request_cohort(project_id, EVERYONE, f"auth test: {what}")["id"]
                    for what in ("ready", "approve", "reject", "held")}
    with Client(service.url, first["owner_token"]) as owner:
        owner.decide(project_id, requests["ready"], approve=True)
        assert owner.wait_request(project_id, requests["ready"])["state"] == "ready"
        owner.set_risk_policy(project_id, {"min_k": 1_000_000})  # holds every export
        owner.decide(project_id, requests["held"], approve=True)
        assert owner.wait_request(project_id, requests["held"])["state"] == "held"
        owner.set_risk_policy(project_id, OPEN_POLICY)
    spare_admin = service.pprl("admin", "token", "--data-dir", str(service.data_dir),
                               "--label", "revoked by the test").stdout.strip()
    assert run["state"] == "done"
    upload_ehr = first["upload_tokens"]["ehr"]
    token_id = upload_ehr.split("_")[1]
    tokens = {
        "admin": service.admin_token,
        "owner": first["owner_token"],
        "upload:ehr": upload_ehr,
        "upload:imaging": first["upload_tokens"]["imaging"],
        "reader:ehr": reader,
        "reader:imaging": other_reader,
        "researcher": researcher,
        "auditor": auditor,
        "other-owner": second["owner_token"],
        "other-upload:ehr": second["upload_tokens"]["ehr"],
    }
    broken = {
        "none": None,
        "malformed": "not-a-token",
        "unknown id": "pprl_0123456789abcdef_" + "A" * 43,
        "wrong secret": f"pprl_{token_id}_" + "B" * 43,
    }
    return {"project_id": project_id, "run_id": run["id"], "tokens": tokens,
            "broken": broken, "ehr_file": provider_files["ehr"],
            "ehr_attributes": attributes["ehr"], "requests": requests,
            "token_ids": {"/projects": disposable["id"],
                          "/admin": spare_admin.split("_")[1]}}


def _call(service: Service, world: dict, method: str, path: str, token: str | None
          ) -> httpx.Response:
    token_id = world["token_ids"]["/admin" if path.startswith("/admin") else "/projects"]
    request = world["requests"]["approve" if path.endswith("/approve") else
                                "reject" if path.endswith("/reject") else
                                "held" if path.endswith("/generalise") else "ready"]
    url = service.url + path.format(project_id=world["project_id"], run_id=world["run_id"],
                                    party="ehr", token_id=token_id, request_id=request)
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    kwargs: dict = {}
    if method == "PUT" and path.endswith(("/encodings", "/attributes")):
        kwargs["content"] = world["ehr_attributes" if path.endswith("/attributes")
                                  else "ehr_file"].read_bytes()
        headers["Content-Type"] = "application/vnd.apache.parquet"
    elif path == "/projects":
        kwargs["json"] = {"name": "x", "schema": "person", "parties": ["a", "b"]}
    elif path.endswith("/tokens") and method == "POST":
        kwargs["json"] = {"role": "reader", "party": "ehr"}
    elif path.endswith("/runs") and method == "POST":
        kwargs["json"] = {"threshold": 0.9}
    elif path.endswith(("/cohorts/count", "/requests")) and method == "POST":
        kwargs["json"] = {"definition": EVERYONE, "purpose": "the access policy test"}
        if path.endswith("/count"):
            del kwargs["json"]["purpose"]
    elif path.endswith("/reject"):
        kwargs["json"] = {"reason": "the access policy test"}
    elif path.endswith("/risk-policy"):
        kwargs["json"] = OPEN_POLICY
    return httpx.request(method, url, headers=headers, timeout=60, **kwargs)


def test_policy_names_every_published_operation(service: Service) -> None:
    spec = httpx.get(f"{service.url}/openapi.json", timeout=30).json()
    published = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    assert published - PUBLIC == set(POLICY)


@pytest.mark.parametrize("operation", sorted(POLICY), ids=lambda op: f"{op[0]} {op[1]}")
def test_operation_refuses_every_wrong_credential(service: Service, world: dict,
                                                  operation: tuple[str, str]) -> None:
    method, path = operation
    for name, token in world["broken"].items():
        response = _call(service, world, method, path, token)
        assert response.status_code == 401, (name, response.text)
        assert response.headers.get("www-authenticate") == "Bearer"
    allowed, success = POLICY[operation]
    for role, token in world["tokens"].items():
        response = _call(service, world, method, path, token)
        if role in allowed:
            assert response.status_code == success, (role, response.status_code, response.text)
        else:
            assert response.status_code == 403, (role, response.status_code, response.text)


def test_health_and_docs_answer_without_a_token(service: Service) -> None:
    for path in ("/health", "/docs", "/openapi.json"):
        assert httpx.get(service.url + path, timeout=30).status_code == 200


def test_docs_describe_the_error_bodies_clients_get(service: Service, world: dict) -> None:
    """Every operation documented a 422 of FastAPI's validation list only, though the
    service's own rules answer 422 with a message, and documented no 401, 404 or 429."""
    spec = httpx.get(f"{service.url}/openapi.json", timeout=30).json()
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if (method.upper(), path) in PUBLIC:
                continue
            for status in ("401", "403", "404", "422", "429"):
                content = operation["responses"][status]["content"]["application/json"]
                assert content["schema"] == {"$ref": "#/components/schemas/ErrorBody"}, \
                    (method, path, status)
    assert "auditor" in spec["info"]["description"]
    # what the service really answers fits the documented body: a rule's message ...
    owner = {"Authorization": f"Bearer {world['tokens']['owner']}"}
    rule = httpx.post(f"{service.url}/projects/{world['project_id']}/runs", headers=owner,
                      json={"threshold": 0.8, "dedup_thresholds": {"ehr": 0.8}}, timeout=30)
    # ... and the schema's list of problems
    schema = httpx.post(f"{service.url}/projects/{world['project_id']}/runs", headers=owner,
                        json={"threshold": "high"}, timeout=30)
    for answer in (rule, schema):
        assert answer.status_code == 422, answer.text
        ErrorBody.model_validate(answer.json())
    assert isinstance(rule.json()["detail"], str)
    assert isinstance(schema.json()["detail"], list)
    # the client shows a list of problems as "where: rule", not a Python list
    shown = service.pprl("run", world["project_id"], "--threshold", "auto", "--blocking",
                         token=world["tokens"]["owner"], check=False)
    assert shown.returncode == 1 and "HTTP 422: body: " in shown.stderr, shown.stderr
    assert "[{" not in shown.stderr
