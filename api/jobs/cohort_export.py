"""The ``cohort_export`` job of an approved request: select the cohort over the run and the
attribute uploads the approval fixed, write the researcher's tables and the relabel table of
each party holding objects with UIDs (the imaging party), keyed for this request; then pass
it through the release gate (``services.release``): its risk report decides whether it is
ready or held. Asked to (``generalise``), it first applies the suggested generalisation.

Everything is written into a staging folder and renamed into place whole, so a failed or
stopped job leaves no partial export, and approving the request again retries it.
"""

from __future__ import annotations

import json
import shutil
from typing import Any

from deid.risk.generalise import GeneralisationError
from linker.cohorts import (
    CohortDefinitionError,
    RequestKeys,
    entity_demographics,
    export_cohort,
    parse_definition,
    relabel_parties,
    relabel_tables,
    select_entities,
)

from ..errors import ServiceError
from ..models import COHORT_EXPORT, RISK_REPORT, CohortRequest, Job, Project
from ..results_store import ResultStore
from ..services import release
from ..services.cohorts import EXPORT_TABLES, export_folder, run_inputs, write_relabel
from ..services.lookups import run_or_404
from .kinds import JobContext, JobInputError, register

__all__ = ["execute_cohort_export", "execute_risk_report"]


@register(COHORT_EXPORT)
def execute_cohort_export(context: JobContext) -> dict[str, Any]:
    control, settings = context.control, context.settings
    with context.sessions() as session:
        job = session.get_one(Job, context.claim.job_id)
        params = json.loads(job.params_json)
        request = session.get_one(CohortRequest, params["request_id"])
        try:
            inputs = run_inputs(session, settings, ResultStore(0), job.project_id,
                                run_or_404(session, job.project_id, params["run_id"]),
                                params["upload_ids"])
            definition = parse_definition(json.loads(request.definition_json),
                                          inputs.columns)
        except (ServiceError, CohortDefinitionError) as e:
            raise JobInputError(f"request {request.id}: {e}") from e
    control.report("selecting", 0.1)
    entities = select_entities(definition, inputs.members, inputs.attributes)
    if not entities:
        raise JobInputError(f"request {request.id}: the cohort is empty over the attributes "
                            f"the approval fixed")
    control.report("exporting", 0.3)
    keys = RequestKeys(settings.service_key(), request.id)
    folder = export_folder(settings, job.project_id, request.id)
    # Each attempt stages apart: a worker frozen past its lease that resumes must not remove
    # what its successor is writing.
    staging = folder.with_name(f".{folder.name}.attempt{context.claim.attempt}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        demographics = entity_demographics(entities, inputs.members, inputs.attributes,
                                           definition.as_of_year or inputs.as_of_year)
        types = {p: {name: c.type for name, c in columns.items()}
                 for p, columns in inputs.columns.items()}
        export_cohort(staging / EXPORT_TABLES, entities, inputs.members, inputs.attributes,
                      types, definition.release, demographics, keys)
        control.report("relabel", 0.8)
        relabel = {party: relabel_tables(entities, inputs.members, party, keys)
                   for party in relabel_parties(inputs.columns)}
        control.report("assessing", 0.9)
        with context.sessions() as session:
            policy = release.policy_of(session.get_one(Project, job.project_id))
        generalised = None
        if params.get("generalise"):
            try:
                generalised = release.generalise_export(staging / EXPORT_TABLES, policy)
            except GeneralisationError as e:
                raise JobInputError(f"request {request.id}: the export cannot be generalised "
                                    f"to the project's policy: {e}") from e
            relabel = {p: release.kept(t, generalised.table) for p, t in relabel.items()}
        write_relabel(staging, relabel, keys)
        document, reasons = release.assess(
            staging / EXPORT_TABLES, policy,
            None if generalised is None else generalised.table)
        if generalised is not None:
            document["generalisation"] = generalised.as_dict()
        context.ensure_held()
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
        # What killed attempts left, of this job or of an earlier export of the request
        # (whose attempts counted from 1 again): this attempt holds the job, so no other
        # writes there.
        for stale in folder.parent.glob(f".{folder.name}.attempt*"):
            shutil.rmtree(stale, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    with context.sessions() as session:
        report = release.store_report(session, job.project_id, job.id, request.id, policy,
                                      document, reasons, context.claim.worker)
        session.commit()
    return {"entities": document["dataset"]["rows"],
            "records": sum(table.num_rows for table in relabel.values()),
            "risk_report_id": report.id, "released": not reasons}


@register(RISK_REPORT)
def execute_risk_report(context: JobContext) -> dict[str, Any]:
    """Assess a request's export again, against the project's policy as it is now."""
    with context.sessions() as session:
        job = session.get_one(Job, context.claim.job_id)
        request_id = json.loads(job.params_json)["request_id"]
        policy = release.policy_of(session.get_one(Project, job.project_id))
    context.control.report("assessing", 0.1)
    tables = export_folder(context.settings, job.project_id, request_id) / EXPORT_TABLES
    if not tables.is_dir():
        raise JobInputError(f"request {request_id}: its export is gone")
    document, reasons = release.assess(tables, policy)
    with context.sessions() as session:
        report = release.store_report(session, job.project_id, job.id, request_id, policy,
                                      document, reasons, context.claim.worker)
        session.commit()
    return {"risk_report_id": report.id, "released": not reasons}
