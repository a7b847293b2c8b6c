"""Cohorts: the catalog and counts (owner and researchers), requests (researchers make them,
the owner decides), the export a researcher downloads and the relabel table a party fetches.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse

from ..deps import (
    AnyPartyDep,
    AuditReaderDep,
    CounterDep,
    OwnerDep,
    ProjectId,
    RequestId,
    RequestReaderDep,
    ResearcherDep,
    ResultsDep,
    SessionDep,
    SettingsDep,
)
from ..schemas import (
    CohortCatalog,
    CohortDecision,
    CohortQuery,
    CohortRequestCreate,
    CohortRequestOut,
    RiskReportOut,
)
from ..services import cohorts
from .error_bodies import error_response

router = APIRouter(prefix="/projects/{project_id}", tags=["cohorts"])

_Responses = dict[int | str, dict[str, Any]]
_NOT_READY: _Responses = {409: error_response(
    "No finished run or no attributes yet, or the request is not in a state that allows "
    "this")}
_BAD_DEFINITION: _Responses = {422: error_response(
    "An unknown party or column, an operator that does not fit the column's type, a bound "
    "that is no finite number, or an empty cohort")}


@router.get("/cohorts/catalog", response_model=CohortCatalog,
            summary="What definitions may use: attribute columns per party (owner, researcher)")
def get_catalog(project_id: ProjectId, session: SessionDep, principal: CounterDep
                ) -> CohortCatalog:
    return cohorts.catalog(session, project_id)


@router.post("/cohorts/count", summary="Count a cohort, small cells suppressed (owner, "
                                       "researcher)",
             responses={**_NOT_READY, **_BAD_DEFINITION})
def count_cohort(project_id: ProjectId, body: CohortQuery, session: SessionDep,
                 settings: SettingsDep, store: ResultsDep, principal: CounterDep
                 ) -> dict[str, Any]:
    """Entities of the run meeting the definition, broken down by sex, age band,
    race/ethnicity and region; cells below the project's `min_cell` are suppressed, with
    complementary suppression, and the same query always gets the same answer. Beside the
    breakdown, each group's share against the reference (default: every linked entity),
    under-represented groups flagged. Audited with the definition's hash."""
    return cohorts.count(session, settings, store, principal, project_id, body)


@router.post("/requests", status_code=201, response_model=CohortRequestOut,
             summary="Request a cohort (researcher)",
             responses={**_NOT_READY, **_BAD_DEFINITION})
def create_request(project_id: ProjectId, body: CohortRequestCreate, session: SessionDep,
                   settings: SettingsDep, store: ResultsDep, principal: ResearcherDep
                   ) -> CohortRequestOut:
    return cohorts.create_request(session, settings, store, principal, project_id, body)


@router.get("/requests", response_model=list[CohortRequestOut],
            summary="Cohort requests with their definitions (the owner and auditors: all; a "
                    "researcher: their own)")
def list_requests(project_id: ProjectId, session: SessionDep, principal: RequestReaderDep
                  ) -> list[CohortRequestOut]:
    return cohorts.list_requests(session, principal, project_id)


@router.get("/requests/{request_id}", response_model=CohortRequestOut,
            summary="A cohort request's state (the owner, auditors, its researcher)")
def get_request(project_id: ProjectId, request_id: RequestId, session: SessionDep,
                principal: RequestReaderDep) -> CohortRequestOut:
    return cohorts.get_request(session, principal, project_id, request_id)


@router.post("/requests/{request_id}/approve", response_model=CohortRequestOut,
             summary="Approve a request: its export is queued (owner)", responses=_NOT_READY)
def approve_request(project_id: ProjectId, request_id: RequestId, session: SessionDep,
                    principal: OwnerDep) -> CohortRequestOut:
    """The export is keyed for this request; approving a request whose export failed
    queues it again."""
    return cohorts.approve(session, principal, project_id, request_id)


@router.post("/requests/{request_id}/reject", response_model=CohortRequestOut,
             summary="Reject a request, with a reason (owner)", responses=_NOT_READY)
def reject_request(project_id: ProjectId, request_id: RequestId, body: CohortDecision,
                   session: SessionDep, principal: OwnerDep) -> CohortRequestOut:
    return cohorts.reject(session, principal, project_id, request_id, body.reason)


@router.get("/requests/{request_id}/export", summary="Download a ready export (its researcher)",
            response_class=FileResponse, responses={
                200: {"content": {"application/zip": {}},
                      "description": "A zip: entities and one table per released party"},
                **_NOT_READY})
def download_export(project_id: ProjectId, request_id: RequestId, session: SessionDep,
                    settings: SettingsDep, principal: ResearcherDep,
                    file_format: Annotated[Literal["parquet", "csv"], Query(
                        alias="format", description="Table format inside the zip.")] = "parquet"
                    ) -> FileResponse:
    archive = cohorts.export_archive(session, settings, principal, project_id, request_id,
                                     file_format)
    return FileResponse(archive, media_type="application/zip",
                        filename=f"{request_id}-{file_format}.zip")


@router.get("/requests/{request_id}/relabel",
            summary="The imaging party's relabel table for a ready export (its upload token)",
            responses={403: error_response("The party holds no objects with UIDs (its "
                                           "attributes have no *_uid column)"),
                       404: error_response("The party holds none of the cohort"),
                       **_NOT_READY})
def get_relabel(project_id: ProjectId, request_id: RequestId, session: SessionDep,
                settings: SettingsDep, principal: AnyPartyDep) -> dict[str, Any]:
    """Its own record ids (site pseudonyms) in the cohort, each with the request's
    pseudonym and day offset, and the request's UID key: what `pprl cohort dicom` needs to
    give the party's de-identified images the export's identifiers and dates."""
    return cohorts.relabel(session, settings, principal, project_id, request_id)


@router.post("/requests/{request_id}/generalise", response_model=CohortRequestOut,
             summary="Export a held request again with the suggested generalisation (owner)",
             responses=_NOT_READY)
def generalise_request(project_id: ProjectId, request_id: RequestId, session: SessionDep,
                       principal: OwnerDep) -> CohortRequestOut:
    """The entity table's quasi-identifiers are generalised to the project's policy (least
    information loss, as ARX does) and the entities of classes still too small suppressed
    from every table; the export is then assessed again."""
    return cohorts.generalise(session, principal, project_id, request_id)


@router.get("/requests/{request_id}/risk-reports", response_model=list[RiskReportOut],
            summary="An export's risk reports, oldest first (owner, auditor)")
def list_risk_reports(project_id: ProjectId, request_id: RequestId, session: SessionDep,
                      principal: AuditReaderDep) -> list[RiskReportOut]:
    return cohorts.risk_reports(session, principal, project_id, request_id)


@router.post("/requests/{request_id}/risk-reports", status_code=202,
             response_model=CohortRequestOut,
             summary="Re-run an export's risk report against the policy as it is now "
                     "(owner, auditor)", responses=_NOT_READY)
def rerun_risk_report(project_id: ProjectId, request_id: RequestId, session: SessionDep,
                      principal: AuditReaderDep) -> CohortRequestOut:
    """A risk-report job on the shared queue; its report is listed when it is done. The
    same export and policy give the same figures."""
    return cohorts.rerun_risk_report(session, principal, project_id, request_id)
