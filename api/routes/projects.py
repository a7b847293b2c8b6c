"""Projects and their tokens: created by a service administrator; readers made by the owner."""

from __future__ import annotations

import json
import secrets

from fastapi import APIRouter, HTTPException

from tokenizer.catalog import shipped_schema_text
from tokenizer.errors import SchemaError
from tokenizer.schema_loader import schema_from_json_text

from ..audit import record
from ..auth import PrincipalDep, SessionDep, require
from ..models import Party, Project, ProjectToken
from ..payloads import ProjectCreate, ProjectCreated, ProjectOut, TokenCreate, TokenCreated
from ..tokens import issue_token
from .common import party_labels, project_or_404, project_out

router = APIRouter(prefix="/projects", tags=["projects"])

_LABEL_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_-")


def _check_labels(parties: list[str]) -> None:
    for label in parties:
        if not label or not label[0].isalpha() or not set(label) <= _LABEL_CHARS \
                or len(label) > 64:
            raise HTTPException(422, f"party label {label!r}: use 1-64 lower-case letters, "
                                     f"digits, '_' or '-', starting with a letter")
    if len(set(parties)) != len(parties):
        raise HTTPException(422, "party labels must be unique")


@router.post("", status_code=201, response_model=ProjectCreated,
             summary="Create a linkage project (service administrator)")
def create_project(body: ProjectCreate, session: SessionDep,
                   principal: PrincipalDep) -> ProjectCreated:
    """Returns the project owner's token and one upload token per party. They are shown
    only in this response: the service keeps their hashes."""
    require(principal, "admin")
    _check_labels(body.parties)
    try:
        text = (shipped_schema_text(body.schema_) if isinstance(body.schema_, str)
                else json.dumps(body.schema_, indent=2))
        schema = schema_from_json_text(text, "schema")
    except SchemaError as e:
        raise HTTPException(422, str(e)) from e
    project = Project(id=f"prj_{secrets.token_hex(8)}", name=body.name,
                      schema_json=text, schema_fingerprint=schema.fingerprint,
                      bloom_filter_bits=schema.bloom_filter_bits, dedup=body.dedup)
    session.add(project)
    session.flush()
    owner = issue_token()
    session.add(ProjectToken(id=owner.id, project_id=project.id, role="owner",
                             secret_hash=owner.secret_hash))
    uploads = {}
    for position, label in enumerate(body.parties):
        session.add(Party(project_id=project.id, label=label, position=position))
        token = issue_token()
        session.add(ProjectToken(id=token.id, project_id=project.id, role="upload", party=label,
                                 secret_hash=token.secret_hash))
        uploads[label] = token.token
    record(session, actor=principal.token_id, role=principal.role, action="project.create",
           project_id=project.id, name=body.name, parties=body.parties, dedup=body.dedup,
           schema_fingerprint=schema.fingerprint, owner_token_id=owner.id)
    session.commit()
    return ProjectCreated(project=project_out(session, project), owner_token=owner.token,
                          upload_tokens=uploads)


@router.get("/{project_id}", response_model=ProjectOut, summary="Describe a project")
def get_project(project_id: str, session: SessionDep, principal: PrincipalDep) -> ProjectOut:
    require(principal, "owner", "upload", "reader", project_id=project_id)
    return project_out(session, project_or_404(session, project_id))


@router.get("/{project_id}/schema", summary="The project's linkage schema (canonical JSON)")
def get_schema(project_id: str, session: SessionDep, principal: PrincipalDep) -> dict[str, object]:
    """Providers tokenize with exactly this schema; uploads made with another are refused."""
    require(principal, "owner", "upload", "reader", project_id=project_id)
    schema: dict[str, object] = json.loads(project_or_404(session, project_id).schema_json)
    return schema


@router.post("/{project_id}/tokens", status_code=201, response_model=TokenCreated,
             summary="Make a result-reader token for one party (owner)")
def create_token(project_id: str, body: TokenCreate, session: SessionDep,
                 principal: PrincipalDep) -> TokenCreated:
    require(principal, "owner", project_id=project_id)
    project_or_404(session, project_id)
    if body.party not in party_labels(session, project_id):
        raise HTTPException(422, f"project {project_id} has no party {body.party!r}")
    token = issue_token()
    session.add(ProjectToken(id=token.id, project_id=project_id, role=body.role,
                             party=body.party, secret_hash=token.secret_hash))
    record(session, actor=principal.token_id, role=principal.role, action="token.create",
           project_id=project_id, token_id=token.id, token_role=body.role, party=body.party)
    session.commit()
    return TokenCreated(token=token.token, role=body.role, party=body.party)
