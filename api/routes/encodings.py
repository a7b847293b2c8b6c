"""Uploading a party's encodings (Parquet from `pprl tokenize`, or clkhash JSON)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from sqlalchemy import select

from ..audit import record
from ..auth import PrincipalDep, SessionDep, require
from ..models import Upload
from ..payloads import UploadOut
from ..uploads import UPLOAD_TYPES, receive_upload
from .common import latest_uploads, party_labels, project_or_404, secret_mismatch, settings_of

router = APIRouter(prefix="/projects/{project_id}", tags=["uploads"])


def _out(upload: Upload) -> UploadOut:
    return UploadOut(id=upload.id, party=upload.party, records=upload.records,
                     size_bytes=upload.size_bytes, sha256=upload.sha256,
                     source_format=upload.source_format, created_at=upload.created_at,
                     key_check=upload.key_check)


@router.put(
    "/parties/{party}/encodings", status_code=201, response_model=UploadOut,
    summary="Upload a party's encodings (its upload token)",
    openapi_extra={"requestBody": {"required": True, "content": {
        media: {"schema": {"type": "string", "format": "binary"}} for media in UPLOAD_TYPES}}},
    responses={409: {"description": "Made with another linkage secret than another "
                                    "party's upload (key check values differ)"},
               413: {"description": "Larger than the service's upload limit"},
               415: {"description": "Unsupported Content-Type"},
               422: {"description": "Not an encodings file of this project's schema and "
                                    "length, or duplicate record ids"}})
async def upload_encodings(project_id: str, party: str, request: Request, session: SessionDep,
                           principal: PrincipalDep) -> UploadOut:
    """The body is the file itself, streamed: `application/vnd.apache.parquet` (or
    `application/octet-stream`) for `pprl tokenize` output, `application/json` for clkhash's
    `{"clks": [...]}`. A new upload replaces the party's previous one for later runs; an
    upload that fails any check leaves nothing stored."""
    require(principal, "upload", project_id=project_id, party=party)
    project = project_or_404(session, project_id)
    if party not in party_labels(session, project_id):
        raise HTTPException(404, f"project {project_id} has no party {party!r}")
    settings = settings_of(request)
    limit = settings.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"upload of {int(declared):,} bytes exceeds the limit of "
                                 f"{limit:,} bytes")
    stored = await receive_upload(request.stream(), request.headers.get("content-type", ""),
                                  settings, project, party)
    others = {p: u.key_check for p, u in latest_uploads(session, project_id).items()
              if p != party}
    mismatch = secret_mismatch({**others, party: stored.key_check})
    if mismatch is not None:
        stored.path.unlink(missing_ok=True)
        raise HTTPException(409, mismatch)
    try:
        upload = Upload(project_id=project_id, party=party, path=str(stored.path),
                        source_format=stored.source_format, records=stored.records,
                        size_bytes=stored.size_bytes, sha256=stored.sha256,
                        key_check=stored.key_check)
        session.add(upload)
        session.flush()
        record(session, actor=principal.token_id, role=principal.role, action="upload",
               project_id=project_id, party=party, upload_id=upload.id, records=stored.records,
               sha256=stored.sha256, size_bytes=stored.size_bytes,
               source_format=stored.source_format)
        session.commit()
    except BaseException:
        session.rollback()
        stored.path.unlink(missing_ok=True)
        raise
    return _out(upload)


@router.get("/uploads", response_model=list[UploadOut], summary="Every upload (owner)")
def list_uploads(project_id: str, session: SessionDep, principal: PrincipalDep
                 ) -> list[UploadOut]:
    require(principal, "owner", project_id=project_id)
    project_or_404(session, project_id)
    rows = session.scalars(select(Upload).where(Upload.project_id == project_id)
                           .order_by(Upload.id))
    return [_out(u) for u in rows]
