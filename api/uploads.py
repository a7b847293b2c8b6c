"""Receiving a party's encodings: streamed to disk under a size limit, checked, then moved
into place. A refused or broken upload leaves nothing behind."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fastapi import HTTPException
from starlette.concurrency import run_in_threadpool

from tokenizer.encodings_file import read_encodings
from tokenizer.errors import TokenizerError

from .models import Project
from .settings import Settings

__all__ = ["StoredUpload", "UPLOAD_TYPES", "receive_upload"]

# content type -> (file suffix, source format name)
UPLOAD_TYPES = {
    "application/vnd.apache.parquet": (".parquet", "parquet"),
    "application/octet-stream": (".parquet", "parquet"),
    "application/json": (".json", "clkhash-json"),
}


@dataclass(frozen=True)
class StoredUpload:
    path: Path
    source_format: str
    records: int
    size_bytes: int
    sha256: str
    schema_fingerprint: str | None
    key_check: str | None


async def _spool(chunks: AsyncIterator[bytes], target: Path, limit: int) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with target.open("wb") as handle:
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise HTTPException(413, f"upload exceeds the limit of {limit:,} bytes")
            digest.update(chunk)
            handle.write(chunk)
    return size, digest.hexdigest()


def _check(path: Path, project: Project, party: str) -> tuple[int, str | None, str | None]:
    """Records, fingerprint and key check value of a spooled upload; 422 naming what is wrong
    otherwise."""
    try:
        data = read_encodings(path)
    except TokenizerError as e:
        raise HTTPException(422, f"party {party!r}: " + str(e).replace(str(path), "upload")
                            ) from e
    meta = data.metadata
    if meta.bloom_filter_bits != project.bloom_filter_bits:
        raise HTTPException(422, f"party {party!r}: upload has l={meta.bloom_filter_bits} bits "
                                 f"but project {project.id} uses l={project.bloom_filter_bits}")
    if meta.schema_fingerprint and meta.schema_fingerprint != project.schema_fingerprint:
        raise HTTPException(422, f"party {party!r}: upload was made with schema "
                                 f"{meta.schema_fingerprint} but project {project.id} uses "
                                 f"schema {project.schema_fingerprint}")
    counts = Counter(data.record_ids)
    if len(counts) != len(data.record_ids):
        dupes = sorted(r for r, c in counts.items() if c > 1)
        raise HTTPException(422, f"party {party!r}: {len(dupes)} duplicate record_id(s), "
                                 f"for example {dupes[:3]}")
    actual = np.bitwise_count(data.clks).sum(axis=1, dtype=np.uint16)
    wrong = np.flatnonzero(actual != data.popcounts)
    if len(wrong):
        raise HTTPException(422, f"party {party!r}: popcount does not match the CLK in "
                                 f"{len(wrong)} record(s), first record_id "
                                 f"{data.record_ids[int(wrong[0])]!r}")
    return len(data), meta.schema_fingerprint, meta.key_check


async def receive_upload(chunks: AsyncIterator[bytes], content_type: str, settings: Settings,
                         project: Project, party: str) -> StoredUpload:
    """Spool, check and move the upload to its final place; the caller records it in the
    database and removes the file if that fails."""
    media = content_type.split(";")[0].strip().lower()
    if media not in UPLOAD_TYPES:
        raise HTTPException(415, f"Content-Type must be one of {sorted(UPLOAD_TYPES)}")
    suffix, source_format = UPLOAD_TYPES[media]
    name = f"{uuid.uuid4().hex}{suffix}"
    spooled = settings.temp_dir / f"upload-{name}"
    try:
        size, sha256 = await _spool(chunks, spooled, settings.max_upload_bytes)
        records, fingerprint, key_check = await run_in_threadpool(_check, spooled, project,
                                                                  party)
        final = settings.uploads_dir / project.id / party / name
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(spooled, final)
    finally:
        spooled.unlink(missing_ok=True)
    return StoredUpload(final, source_format, records, size, sha256, fingerprint, key_check)
