"""Uploading a party's encodings (Parquet from `pprl tokenize` or `pprl deid`, or clkhash
JSON), streamed.

The handler is async only to stream the body: the role check ran in its own short session,
no database connection is held while the body arrives, a body that sends nothing for
``upload_idle_seconds`` is dropped, and file writes, checks and database work run on worker
threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from ..deps import OwnerDep, PartyLabel, ProjectId, SessionDep, SettingsDep, UploaderDep
from ..errors import RequestTimeout, TooLarge, UnsupportedMedia
from ..schemas import UploadOut
from ..services import uploads
from ..settings import Settings
from .error_bodies import error_response

router = APIRouter(prefix="/projects/{project_id}", tags=["uploads"])

_WRITE_BYTES = 1 << 20


async def _chunks_or_timeout(chunks: AsyncIterator[bytes], idle: float
                             ) -> AsyncIterator[bytes]:
    iterator = chunks.__aiter__()
    while True:
        try:
            chunk = await asyncio.wait_for(iterator.__anext__(), timeout=idle)
        except StopAsyncIteration:
            return
        except TimeoutError as e:
            raise RequestTimeout(f"the upload sent nothing for {idle:g} s and was dropped; "
                                 f"send it again") from e
        yield chunk


async def _spool(request: Request, settings: Settings) -> uploads.ReceivedBody:
    """The body into a temporary file (0600), under the size limit, written in 1 MiB pieces
    on a worker thread."""
    target = settings.temp_dir / f"upload-{uuid.uuid4().hex}"
    digest, size, pending = hashlib.sha256(), 0, bytearray()
    handle = await run_in_threadpool(target.open, "wb")
    try:
        async for chunk in _chunks_or_timeout(request.stream(), settings.upload_idle_seconds):
            size += len(chunk)
            if size > settings.max_upload_bytes:
                raise TooLarge(f"upload exceeds the limit of {settings.max_upload_bytes:,} "
                               f"bytes")
            digest.update(chunk)
            pending += chunk
            if len(pending) >= _WRITE_BYTES:
                await run_in_threadpool(handle.write, bytes(pending))
                pending.clear()
        if pending:
            await run_in_threadpool(handle.write, bytes(pending))
    except BaseException:
        await run_in_threadpool(handle.close)
        Path(target).unlink(missing_ok=True)
        raise
    await run_in_threadpool(handle.close)
    return uploads.ReceivedBody(target, size, digest.hexdigest())


@router.put(
    "/parties/{party}/encodings", status_code=201, response_model=UploadOut,
    summary="Upload a party's encodings (its upload token)",
    openapi_extra={"requestBody": {"required": True, "content": {
        media: {"schema": {"type": "string", "format": "binary"}}
        for media in uploads.UPLOAD_TYPES}}},
    responses={408: error_response("The body stalled"),
               409: error_response("Made with another linkage secret than another party's "
                                   "upload (key check values differ)"),
               413: error_response("Larger than the upload limit or the party's quota"),
               415: error_response("Unsupported Content-Type"),
               422: error_response("Not an encodings file of this project's schema and "
                                   "length: a column, type or metadata key is wrong, a "
                                   "record id repeats, or it holds no record")})
async def upload_encodings(project_id: ProjectId, party: PartyLabel, request: Request,
                           settings: SettingsDep, principal: UploaderDep) -> UploadOut:
    """The body is the file itself, streamed: `application/vnd.apache.parquet` (or
    `application/octet-stream`) for `pprl tokenize` and `pprl deid` output,
    `application/json` for clkhash's `{"clks": [...]}`. A new upload replaces the party's
    previous one for later runs (which is then deleted unless a run used it); an upload that
    fails any check leaves nothing stored."""
    source_format = uploads.media_of(request.headers.get("content-type", ""))
    declared = request.headers.get("content-length")
    declared_bytes = int(declared) if declared and declared.isdigit() else None
    sessions = request.app.state.sessions
    await run_in_threadpool(uploads.check_can_upload, sessions, settings, project_id, party,
                            declared_bytes)
    body = await _spool(request, settings)
    return await run_in_threadpool(uploads.store_upload, sessions, settings, principal,
                                   project_id, party, body, source_format)


@router.put(
    "/parties/{party}/attributes", status_code=201, response_model=UploadOut,
    summary="Upload a party's attributes file (its upload token)",
    openapi_extra={"requestBody": {"required": True, "content": {
        media: {"schema": {"type": "string", "format": "binary"}}
        for media, kind in uploads.UPLOAD_TYPES.items() if kind == "parquet"}}},
    responses={408: error_response("The body stalled"),
               413: error_response("Larger than the upload limit or the party's quota"),
               415: error_response("Not Parquet (application/vnd.apache.parquet or "
                                   "application/octet-stream)"),
               422: error_response("Not an attributes file: an undeclared or mistyped "
                                   "column, or one that holds direct identifiers")})
async def upload_attributes(project_id: ProjectId, party: PartyLabel, request: Request,
                            settings: SettingsDep, principal: UploaderDep) -> UploadOut:
    """The body is the attributes file (`pprl attributes`, or `pprl deid`'s
    OUT_DIR/attributes.parquet), streamed, with the same limits as encodings. A new upload
    replaces the party's previous attributes for later cohorts."""
    if uploads.media_of(request.headers.get("content-type", "")) != "parquet":
        raise UnsupportedMedia("an attributes file is Parquet "
                               "(Content-Type: application/vnd.apache.parquet)")
    declared = request.headers.get("content-length")
    declared_bytes = int(declared) if declared and declared.isdigit() else None
    sessions = request.app.state.sessions
    await run_in_threadpool(uploads.check_can_upload, sessions, settings, project_id, party,
                            declared_bytes)
    body = await _spool(request, settings)
    return await run_in_threadpool(uploads.store_attributes, sessions, settings, principal,
                                   project_id, party, body)


@router.get("/uploads", response_model=list[UploadOut], summary="Every upload (owner)")
def list_uploads(project_id: ProjectId, session: SessionDep, principal: OwnerDep
                 ) -> list[UploadOut]:
    return uploads.list_uploads(session, project_id)
