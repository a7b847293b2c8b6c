"""Projects: created by a service administrator; described to their members."""

from __future__ import annotations

from fastapi import APIRouter

from ..deps import AdminDep, MemberDep, OwnerDep, ProjectId, SessionDep
from ..schemas import ProjectCreate, ProjectCreated, ProjectOut, RiskPolicy
from ..services import projects, release

router = APIRouter(prefix="/projects", tags=["projects"])


@router.post("", status_code=201, response_model=ProjectCreated,
             summary="Create a linkage project (service administrator)")
def create_project(body: ProjectCreate, session: SessionDep, principal: AdminDep
                   ) -> ProjectCreated:
    """Returns the project owner's token and one upload token per party. They are shown
    only in this response: the service keeps their hashes."""
    return projects.create_project(session, principal, body)


@router.get("/{project_id}", response_model=ProjectOut, summary="Describe a project")
def get_project(project_id: ProjectId, session: SessionDep, principal: MemberDep
                ) -> ProjectOut:
    """An upload or reader token sees its own party's upload count only."""
    return projects.describe_project(session, principal, project_id)


@router.get("/{project_id}/schema", summary="The project's linkage schema (canonical JSON)")
def get_schema(project_id: ProjectId, session: SessionDep, principal: MemberDep
               ) -> dict[str, object]:
    """Providers tokenize with exactly this schema; uploads made with another are refused."""
    return projects.project_schema(session, project_id)


@router.put("/{project_id}/risk-policy", response_model=RiskPolicy,
            summary="Change the release gate's risk policy (owner)")
def put_risk_policy(project_id: ProjectId, body: RiskPolicy, session: SessionDep,
                    principal: OwnerDep) -> RiskPolicy:
    """Cohort exports made from now on are held unless they meet it; audited with the
    policy before and after. Re-run an export's risk report to assess it anew."""
    return release.set_policy(session, principal, project_id, body)
