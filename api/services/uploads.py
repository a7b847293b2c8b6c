"""Receiving a party's encodings: checked in bounded memory before anything is kept, moved
into place, recorded; the party's earlier uploads that no run used are pruned, and a
party's stored uploads stay within its quota. A refused upload leaves nothing behind.

The body itself is streamed to a temporary file by the router, with no database connection
held meanwhile; everything here runs on a worker thread, never on the event loop.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tokenizer.attributes_file import check_attributes_upload
from tokenizer.clkhash_json import convert_clkhash_json
from tokenizer.encodings_check import EncodingsLimits, check_parquet_encodings
from tokenizer.errors import TokenizerError

from ..deps import Principal
from ..errors import Conflict, Invalid, TooLarge, UnsupportedMedia
from ..models import ATTRIBUTES, ENCODINGS, Job, Project, Upload
from ..schemas import UploadOut
from ..security.audit import record
from ..settings import Settings
from .lookups import latest_uploads, project_or_404, require_party

__all__ = ["UPLOAD_TYPES", "ReceivedBody", "media_of", "check_can_upload", "store_upload",
           "store_attributes", "list_uploads", "prune_uploads", "upload_out",
           "secret_mismatch"]

# content type -> source format
UPLOAD_TYPES = {
    "application/vnd.apache.parquet": "parquet",
    "application/octet-stream": "parquet",
    "application/json": "clkhash-json",
}


@dataclass(frozen=True)
class ReceivedBody:
    """A body spooled to ``path`` by the router: its size and SHA-256."""

    path: Path
    size_bytes: int
    sha256: str


def media_of(content_type: str) -> str:
    """The upload's source format from its Content-Type, or UnsupportedMedia."""
    media = content_type.split(";")[0].strip().lower()
    if media not in UPLOAD_TYPES:
        raise UnsupportedMedia(f"Content-Type must be one of {sorted(UPLOAD_TYPES)}")
    return UPLOAD_TYPES[media]


def upload_out(upload: Upload) -> UploadOut:
    return UploadOut(id=upload.id, party=upload.party, records=upload.records,
                     size_bytes=upload.size_bytes, sha256=upload.sha256,
                     source_format=upload.source_format, created_at=upload.created_at,
                     key_check=upload.key_check, kind=upload.kind,  # type: ignore[arg-type]
                     columns=json.loads(upload.columns_json) if upload.columns_json else None)


def secret_mismatch(uploads: dict[str, str | None]) -> str | None:
    """Why parties' uploads cannot be linked together because their key check values (party
    -> value; None: cannot say) differ; None if they agree."""
    known = [(party, value) for party, value in uploads.items() if value]
    for party, value in known[1:]:
        first, first_value = known[0]
        if value != first_value:
            return (f"party {party!r} uploaded encodings made with another linkage secret "
                    f"than party {first!r} (key check values {value} and {first_value}): "
                    f"every provider must tokenize with the same secret bytes; check that "
                    f"their secret files are identical (a trailing line break in one is "
                    f"enough to differ) and upload again")
    return None


def _used_upload_ids(session: Session, project_id: str) -> set[int]:
    used: set[int] = set()
    for params in session.scalars(select(Job.params_json).where(Job.project_id == project_id)):
        used.update(json.loads(params).get("upload_ids", []))
    return used


def _kept_bytes(session: Session, settings: Settings, project_id: str, party: str) -> int:
    """Bytes of the party's stored uploads that stay when a new one arrives."""
    used = _used_upload_ids(session, project_id)
    rows = session.execute(select(Upload.id, Upload.size_bytes).where(
        Upload.project_id == project_id, Upload.party == party, Upload.deleted_at.is_(None)))
    return sum(size for upload_id, size in rows
               if upload_id in used or not settings.prune_uploads)


def check_can_upload(sessions: sessionmaker[Session], settings: Settings, project_id: str,
                     party: str, declared_bytes: int | None) -> None:
    """Before the body is read: the party exists, and a declared size fits the limit and the
    party's quota."""
    if declared_bytes is not None and declared_bytes > settings.max_upload_bytes:
        raise TooLarge(f"upload of {declared_bytes:,} bytes exceeds the limit of "
                       f"{settings.max_upload_bytes:,} bytes")
    with sessions() as session:
        require_party(session, project_id, party)
        if declared_bytes is not None:
            _check_quota(session, settings, project_id, party, declared_bytes)


def _check_quota(session: Session, settings: Settings, project_id: str, party: str,
                 size: int) -> None:
    kept = _kept_bytes(session, settings, project_id, party)
    if kept + size > settings.party_quota_bytes:
        raise TooLarge(f"party {party!r}: this upload ({size:,} bytes) and the {kept:,} bytes "
                       f"of earlier uploads that runs still use exceed the party's storage "
                       f"quota of {settings.party_quota_bytes:,} bytes")


def _project(sessions: sessionmaker[Session], project_id: str) -> Project:
    """The project, read in a session of its own that is closed before a file is checked."""
    with sessions() as session:
        return project_or_404(session, project_id)


def _checked_file(settings: Settings, project: Project, party: str, body: ReceivedBody,
                  source_format: str) -> tuple[Path, int, str | None]:
    """The file to keep (the body itself, or clkhash JSON converted to an encodings file),
    its records and key check value, after every check."""
    name = f"party {party!r}: upload"
    limits = EncodingsLimits(settings.max_upload_records, settings.max_record_id_bytes,
                             settings.max_column_chunk_bytes)
    try:
        if source_format == "clkhash-json":
            if body.size_bytes > settings.max_json_upload_bytes:
                raise TooLarge(f"{name} of clkhash JSON is {body.size_bytes:,} bytes, more than "
                               f"the {settings.max_json_upload_bytes:,} accepted; upload "
                               f"Parquet from `pprl tokenize` instead")
            converted = body.path.with_name(body.path.name + ".parquet")
            records, bits = convert_clkhash_json(body.path, converted, name,
                                                 settings.max_upload_records)
            body.path.unlink()
            fingerprint, key_check, path = None, None, converted
        else:
            summary = check_parquet_encodings(body.path, name, limits)
            records, bits = summary.records, summary.bloom_filter_bits
            fingerprint, key_check, path = (summary.schema_fingerprint, summary.key_check,
                                            body.path)
    except TokenizerError as e:
        raise Invalid(str(e)) from e
    if bits != project.bloom_filter_bits:
        raise Invalid(f"{name} has l={bits} bits but project {project.id} uses "
                      f"l={project.bloom_filter_bits}")
    if fingerprint is not None and fingerprint != project.schema_fingerprint:
        raise Invalid(f"{name} was made with schema {fingerprint} but project {project.id} "
                      f"uses schema {project.schema_fingerprint}")
    return path, records, key_check


def store_upload(sessions: sessionmaker[Session], settings: Settings, principal: Principal,
                 project_id: str, party: str, body: ReceivedBody,
                 source_format: str) -> UploadOut:
    """Check the spooled body, keep it and record it (one commit), then prune. The check
    (tens of seconds for a big file) holds no database connection: concurrent ones would
    exhaust the pool."""
    kept: Path | None = None
    try:
        project = _project(sessions, project_id)
        path, records, key_check = _checked_file(settings, project, party, body,
                                                 source_format)
        with sessions() as session:
            others = {p: u.key_check for p, u in latest_uploads(session, project_id).items()
                      if p != party}
            mismatch = secret_mismatch({**others, party: key_check})
            if mismatch is not None:
                raise Conflict(mismatch)
            _check_quota(session, settings, project_id, party, body.size_bytes)
            final = settings.uploads_dir / project_id / party / f"{uuid.uuid4().hex}.parquet"
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, final)
            kept = final
            upload = Upload(project_id=project_id, party=party, path=str(final),
                            source_format=source_format, records=records,
                            size_bytes=body.size_bytes, sha256=body.sha256,
                            key_check=key_check)
            session.add(upload)
            session.flush()
            record(session, actor=principal.token_id, role=principal.role, action="upload",
                   project_id=project_id, party=party, upload_id=upload.id, records=records,
                   sha256=body.sha256, size_bytes=body.size_bytes, source_format=source_format)
            session.commit()
            kept = None  # recorded: it is the party's data now
            if settings.prune_uploads:
                prune_uploads(session, project_id, party, actor=principal.token_id,
                              role=principal.role)
            return upload_out(upload)
    finally:
        for leftover in (body.path, body.path.with_name(body.path.name + ".parquet"), kept):
            if leftover is not None:
                leftover.unlink(missing_ok=True)


def store_attributes(sessions: sessionmaker[Session], settings: Settings,
                     principal: Principal, project_id: str, party: str,
                     body: ReceivedBody) -> UploadOut:
    """Check a spooled attributes file (bounded before it is read, then every declared
    column and the identifier rules) with no database connection held, keep it and record it
    (one commit), then prune."""
    name = f"party {party!r}: attributes upload"
    limits = EncodingsLimits(settings.max_upload_records, settings.max_record_id_bytes,
                             settings.max_column_chunk_bytes)
    kept: Path | None = None
    try:
        try:  # the project and party exist: check_can_upload looked before the body came
            declared = check_attributes_upload(body.path, name, limits)
        except TokenizerError as e:
            raise Invalid(str(e)) from e
        with sessions() as session:
            _check_quota(session, settings, project_id, party, body.size_bytes)
            final = settings.uploads_dir / project_id / party / f"{uuid.uuid4().hex}.parquet"
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(body.path, final)
            kept = final
            upload = Upload(project_id=project_id, party=party, path=str(final),
                            source_format="parquet", records=declared.table.num_rows,
                            size_bytes=body.size_bytes, sha256=body.sha256, key_check=None,
                            kind=ATTRIBUTES, columns_json=json.dumps(
                                [vars(c) for c in declared.columns]))
            session.add(upload)
            session.flush()
            record(session, actor=principal.token_id, role=principal.role,
                   action="attributes.upload", project_id=project_id, party=party,
                   upload_id=upload.id, rows=upload.records, sha256=body.sha256,
                   columns=[c.name for c in declared.columns])
            session.commit()
            kept = None
            if settings.prune_uploads:
                prune_uploads(session, project_id, party, actor=principal.token_id,
                              role=principal.role)
            return upload_out(upload)
    finally:
        for leftover in (body.path, kept):
            if leftover is not None:
                leftover.unlink(missing_ok=True)


def prune_uploads(session: Session, project_id: str, party: str | None = None, *,
                  actor: str, role: str) -> int:
    """Delete the files of uploads that are neither a party's latest nor used by any run;
    their rows stay (for the audit log). Returns how many were pruned."""
    used = _used_upload_ids(session, project_id)
    latest = {u.id for kind in (ENCODINGS, ATTRIBUTES)
              for u in latest_uploads(session, project_id, kind).values()}
    query = select(Upload).where(Upload.project_id == project_id, Upload.deleted_at.is_(None))
    if party is not None:
        query = query.where(Upload.party == party)
    pruned = [u for u in session.scalars(query) if u.id not in used and u.id not in latest]
    for upload in pruned:
        Path(upload.path).unlink(missing_ok=True)
        upload.deleted_at = time.time()
    if pruned:
        record(session, actor=actor, role=role, action="uploads.prune", project_id=project_id,
               upload_ids=[u.id for u in pruned])
        session.commit()
    return len(pruned)


def list_uploads(session: Session, project_id: str) -> list[UploadOut]:
    project_or_404(session, project_id)
    rows = session.scalars(select(Upload).where(Upload.project_id == project_id)
                           .order_by(Upload.id))
    return [upload_out(u) for u in rows]
