"""Projects: created by a service administrator with one owner token and one upload token
per party; described to their members (each party seeing only its own party's numbers)."""

from __future__ import annotations

import json
import secrets

from sqlalchemy.orm import Session

from tokenizer.catalog import shipped_schema_text
from tokenizer.errors import SchemaError
from tokenizer.schema_loader import schema_from_json_text

from ..deps import Principal
from ..errors import Invalid
from ..models import Party, Project, ProjectToken
from ..schemas import ProjectCreate, ProjectCreated, ProjectOut
from ..security.audit import record
from ..security.tokens import issue_token
from .lookups import latest_uploads, party_labels, project_or_404
from .release import policy_of

__all__ = ["create_project", "describe_project", "project_schema"]

_LABEL_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_-")


def _check_labels(parties: list[str]) -> None:
    for label in parties:
        if not label or not label[0].isalpha() or not set(label) <= _LABEL_CHARS \
                or len(label) > 64:
            raise Invalid(f"party label {label!r}: use 1-64 lower-case letters, digits, '_' "
                          f"or '-', starting with a letter")
    if len(set(parties)) != len(parties):
        raise Invalid("party labels must be unique")


def _out(session: Session, project: Project, principal: Principal) -> ProjectOut:
    uploads = latest_uploads(session, project.id)
    labels = party_labels(session, project.id)
    visible = labels if principal.role in ("owner", "admin") else [principal.party]
    return ProjectOut(id=project.id, name=project.name,
                      schema_fingerprint=project.schema_fingerprint,
                      bloom_filter_bits=project.bloom_filter_bits, parties=labels,
                      dedup=project.dedup, min_cell=project.min_cell,
                      risk_policy=policy_of(project),
                      created_at=project.created_at,
                      uploads={p: uploads[p].records if p in uploads else None
                               for p in labels if p in visible})


def create_project(session: Session, principal: Principal, body: ProjectCreate
                   ) -> ProjectCreated:
    _check_labels(body.parties)
    try:
        text = (shipped_schema_text(body.schema_) if isinstance(body.schema_, str)
                else json.dumps(body.schema_, indent=2))
        schema = schema_from_json_text(text, "schema")
    except SchemaError as e:
        raise Invalid(str(e)) from e
    project = Project(id=f"prj_{secrets.token_hex(8)}", name=body.name,
                      schema_json=text, schema_fingerprint=schema.fingerprint,
                      bloom_filter_bits=schema.bloom_filter_bits, dedup=body.dedup,
                      min_cell=body.min_cell, risk_policy_json=body.risk_policy.model_dump_json())
    session.add(project)
    session.flush()
    owner = issue_token()
    session.add(ProjectToken(id=owner.id, project_id=project.id, role="owner",
                             secret_hash=owner.secret_hash, label="project owner"))
    uploads = {}
    for position, label in enumerate(body.parties):
        session.add(Party(project_id=project.id, label=label, position=position))
        token = issue_token()
        session.add(ProjectToken(id=token.id, project_id=project.id, role="upload", party=label,
                                 secret_hash=token.secret_hash, label=f"{label} uploads"))
        uploads[label] = token.token
    record(session, actor=principal.token_id, role=principal.role, action="project.create",
           project_id=project.id, name=body.name, parties=body.parties, dedup=body.dedup,
           schema_fingerprint=schema.fingerprint, owner_token_id=owner.id,
           risk_policy=body.risk_policy.model_dump())
    session.commit()
    return ProjectCreated(project=_out(session, project, principal), owner_token=owner.token,
                          upload_tokens=uploads)


def describe_project(session: Session, principal: Principal, project_id: str) -> ProjectOut:
    return _out(session, project_or_404(session, project_id), principal)


def project_schema(session: Session, project_id: str) -> dict[str, object]:
    schema: dict[str, object] = json.loads(project_or_404(session, project_id).schema_json)
    return schema
