"""Python client of the linkage service (what the `pprl project/upload/run/...` commands use).

    client = Client("http://127.0.0.1:8000", token=os.environ["PPRL_TOKEN"])
    run = client.start_run(project_id, threshold=0.75)
    run = client.wait(project_id, run["id"])
    mapping = client.party_entities(project_id, run["id"], "ehr")
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from tokenizer.encodings_file import check_folder_complete

__all__ = ["Client", "ServiceError"]

_TERMINAL = ("done", "failed", "cancelled")


class ServiceError(Exception):
    """The service answered with an error status; ``status`` and the service's message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


def _detail(response: httpx.Response) -> str:
    """The error's message; a list of field problems (a request the schema refuses) as
    "where: rule" lines joined, not a Python list."""
    try:
        detail = response.json().get("detail", response.text)
    except (ValueError, AttributeError):
        return response.text
    if isinstance(detail, list):
        return "; ".join(_problem(p) for p in detail)
    return str(detail)


def _problem(problem: object) -> str:
    if not isinstance(problem, dict):
        return str(problem)
    where = ".".join(str(part) for part in problem.get("loc", ()))
    return f"{where}: {problem.get('msg', '')}" if where else str(problem.get("msg", ""))


class Client:
    def __init__(self, url: str, token: str | None = None, *, timeout: float = 60.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise ServiceError(response.status_code, _detail(response))
        return response.json()

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/health")
        return result

    def create_project(self, name: str, schema: str | dict[str, Any], parties: list[str],
                       dedup: bool = False, min_cell: int = 11,
                       risk_policy: dict[str, Any] | None = None) -> dict[str, Any]:
        body = {"name": name, "schema": schema, "parties": parties, "dedup": dedup,
                "min_cell": min_cell}
        if risk_policy is not None:
            body["risk_policy"] = risk_policy
        result: dict[str, Any] = self._call("POST", "/projects", json=body)
        return result

    def set_risk_policy(self, project_id: str, policy: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._call("PUT", f"/projects/{project_id}/risk-policy",
                                            json=policy)
        return result

    def project(self, project_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/projects/{project_id}")
        return result

    def create_reader_token(self, project_id: str, party: str) -> dict[str, Any]:
        return self.create_token(project_id, party)

    def create_token(self, project_id: str, party: str | None = None, role: str = "reader",
                     label: str = "", expires_in_days: float | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", f"/projects/{project_id}/tokens", json={
            "role": role, "party": party, "label": label, "expires_in_days": expires_in_days})
        return result

    def tokens(self, project_id: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", f"/projects/{project_id}/tokens")
        return result

    def revoke_token(self, project_id: str, token_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("DELETE",
                                            f"/projects/{project_id}/tokens/{token_id}")
        return result

    def upload(self, project_id: str, party: str, path: str | Path,
               what: str = "encodings") -> dict[str, Any]:
        """Stream an encodings file (Parquet, or clkhash JSON if it ends in .json), or with
        ``what="attributes"`` an attributes file.

        Raises:
            InputError: the file lies in a folder marked incomplete (an unfinished run).
        """
        path = Path(path)
        check_folder_complete(path)
        media = ("application/json" if path.suffix.lower() == ".json"
                 else "application/vnd.apache.parquet")

        def chunks() -> Iterator[bytes]:
            with path.open("rb") as handle:
                while block := handle.read(1 << 20):
                    yield block

        result: dict[str, Any] = self._call(
            "PUT", f"/projects/{project_id}/parties/{party}/{what}", content=chunks(),
            headers={"Content-Type": media, "Content-Length": str(path.stat().st_size)})
        return result

    def start_run(self, project_id: str, threshold: float | str | None = None,
                  blocking: bool = False, *, backend: str = "cpu", solver: str | None = None,
                  tokens: Sequence[str] = (), token_value_cap: int | None = None,
                  dedup_thresholds: dict[str, float] | None = None) -> dict[str, Any]:
        """Queue a linkage run. Options are sent only when given or unlike the defaults (a
        service without them still answers); ``threshold`` or ``solver`` None: the
        service's default; ``threshold`` "auto": chosen from the data; ``dedup_thresholds``
        (with a threshold): party -> the threshold of pairs within it."""
        body: dict[str, Any] = {"blocking": blocking}
        if threshold is not None:
            body["threshold"] = threshold
        if dedup_thresholds:
            body["dedup_thresholds"] = dedup_thresholds
        if backend != "cpu":
            body["backend"] = backend
        if solver is not None:
            body["solver"] = solver
        if tokens:
            body["tokens"] = list(tokens)
        if token_value_cap is not None:
            body["token_value_cap"] = token_value_cap
        result: dict[str, Any] = self._call("POST", f"/projects/{project_id}/runs", json=body)
        return result

    def run(self, project_id: str, run_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/projects/{project_id}/runs/{run_id}")
        return result

    def cancel(self, project_id: str, run_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST",
                                            f"/projects/{project_id}/runs/{run_id}/cancel")
        return result

    def wait(self, project_id: str, run_id: int, *, timeout: float = 3600.0,
             poll: float = 0.5, on_update: Callable[[dict[str, Any]], None] | None = None
             ) -> dict[str, Any]:
        """Poll until the run is done, failed or cancelled (TimeoutError after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.run(project_id, run_id)
            if on_update is not None:
                on_update(run)
            if run["state"] in _TERMINAL:
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} still {run['state']} after {timeout} s")
            time.sleep(poll)

    def _pages(self, path: str, page_size: int, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        while True:
            page = self._call("GET", path, params={**params, "offset": len(items),
                                                   "limit": page_size})
            items += page["items"]
            if not page["items"] or len(items) >= page["total"]:
                return items

    def matches(self, project_id: str, run_id: int, page_size: int = 10_000
                ) -> list[dict[str, Any]]:
        return self._pages(f"/projects/{project_id}/runs/{run_id}/matches", page_size)

    def groups(self, project_id: str, run_id: int, min_size: int = 2,
               page_size: int = 10_000) -> list[dict[str, Any]]:
        return self._pages(f"/projects/{project_id}/runs/{run_id}/groups", page_size,
                           min_size=min_size)

    def party_entities(self, project_id: str, run_id: int, party: str,
                       page_size: int = 10_000) -> list[dict[str, Any]]:
        return self._pages(f"/projects/{project_id}/runs/{run_id}/parties/{party}/entities",
                           page_size)

    def audit(self, project_id: str, page_size: int = 1000) -> list[dict[str, Any]]:
        return self._pages(f"/projects/{project_id}/audit", page_size)

    def audit_head(self, project_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/projects/{project_id}/audit/head")
        return result

    def cohort_catalog(self, project_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/projects/{project_id}/cohorts/catalog")
        return result

    def count_cohort(self, project_id: str, definition: dict[str, Any],
                     run_id: int | None = None,
                     reference: dict[str, dict[str, float]] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "POST", f"/projects/{project_id}/cohorts/count",
            json={"definition": definition, "run_id": run_id, "reference": reference})
        return result

    def request_cohort(self, project_id: str, definition: dict[str, Any], purpose: str,
                       run_id: int | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "POST", f"/projects/{project_id}/requests",
            json={"definition": definition, "purpose": purpose, "run_id": run_id})
        return result

    def cohort_requests(self, project_id: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", f"/projects/{project_id}/requests")
        return result

    def cohort_request(self, project_id: str, request_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET",
                                            f"/projects/{project_id}/requests/{request_id}")
        return result

    def decide(self, project_id: str, request_id: str, approve: bool, reason: str = ""
               ) -> dict[str, Any]:
        """Approve (queues the export) or reject a request."""
        path = f"/projects/{project_id}/requests/{request_id}"
        result: dict[str, Any] = (self._call("POST", f"{path}/approve") if approve else
                                  self._call("POST", f"{path}/reject", json={"reason": reason}))
        return result

    def generalise(self, project_id: str, request_id: str) -> dict[str, Any]:
        """Export a held request again with the suggested generalisation (owner)."""
        result: dict[str, Any] = self._call(
            "POST", f"/projects/{project_id}/requests/{request_id}/generalise")
        return result

    def risk_reports(self, project_id: str, request_id: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call(
            "GET", f"/projects/{project_id}/requests/{request_id}/risk-reports")
        return result

    def rerun_risk_report(self, project_id: str, request_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "POST", f"/projects/{project_id}/requests/{request_id}/risk-reports")
        return result

    def wait_request(self, project_id: str, request_id: str, *, timeout: float = 3600.0,
                     poll: float = 0.5) -> dict[str, Any]:
        """Poll an approved request until its export is ready or failed."""
        deadline = time.monotonic() + timeout
        while True:
            request = self.cohort_request(project_id, request_id)
            if request["state"] != "exporting":
                return request
            if time.monotonic() > deadline:
                raise TimeoutError(f"request {request_id} still exporting after {timeout} s")
            time.sleep(poll)

    def download_export(self, project_id: str, request_id: str, target: Path,
                        file_format: str = "parquet") -> Path:
        """Stream a ready export's zip into ``target`` (written beside it, then renamed)."""
        partial = target.with_name(f".{target.name}.partial")
        path = f"/projects/{project_id}/requests/{request_id}/export"
        with self._http.stream("GET", path, params={"format": file_format}) as response:
            if response.status_code >= 400:
                response.read()
                raise ServiceError(response.status_code, _detail(response))
            try:
                with partial.open("wb") as handle:
                    for block in response.iter_bytes(1 << 20):
                        handle.write(block)
                os.replace(partial, target)
            finally:
                partial.unlink(missing_ok=True)
        return target

    def relabel(self, project_id: str, request_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "GET", f"/projects/{project_id}/requests/{request_id}/relabel")
        return result
