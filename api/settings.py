"""Service configuration: where the database and the data folder are, and every limit.

Everything has an embedded default (SQLite file and folders under the data directory) so
that ``pprl serve`` runs with nothing else installed; ``PPRL_*`` environment variables
override (``PPRL_DATABASE_URL=postgresql+psycopg://...``). The data directory and everything
in it are readable by the service's user only, whatever the umask.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "DEFAULT_DATA_DIR", "private_files"]

DEFAULT_DATA_DIR = Path("pprl-data")
_SERVICE_KEY_BYTES = 32
_MIB = 1 << 20


def private_files() -> None:
    """New files and folders of this process: its user's only (0600 and 0700)."""
    os.umask(0o077)


class Settings(BaseSettings):
    """The service's settings; each field is also ``PPRL_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="PPRL_", frozen=True, extra="ignore")

    data_dir: Path = Field(DEFAULT_DATA_DIR, description=(
        "Uploads, run results and (by default) the SQLite database and service key. With "
        "several machines (PostgreSQL), the API and the workers must share it."))
    database_url: str = Field("", description="SQLAlchemy URL; default: SQLite in data_dir.")
    dask_scheduler: str = Field("", description=(
        "Runs with backend dask: the Dask scheduler's address; its workers must share "
        "data_dir (tiles go to data_dir/dask-tiles). Default: a local cluster per run."))
    service_key_file: Path | None = Field(None, description=(
        "The service's own secret for entity pseudonyms; default: data_dir/service.key."))
    max_upload_bytes: int = Field(1 << 30, ge=1, description=(
        "Larger uploads are refused with 413 while they stream in."))
    max_json_upload_bytes: int = Field(256 * _MIB, ge=1, description=(
        "clkhash JSON is parsed as it streams; larger JSON uploads are refused."))
    max_body_bytes: int = Field(_MIB, ge=1024, description=(
        "Largest request body other than an upload (JSON of projects, runs, cohorts); "
        "larger ones are refused with 413 before they are read."))
    max_upload_records: int = Field(20_000_000, ge=1, description=(
        "Records one upload may hold (memory of the uniqueness check: 8 bytes each)."))
    max_record_id_bytes: int = Field(256, ge=1, description="Longest record_id accepted.")
    max_column_chunk_bytes: int = Field(512 * _MIB, ge=1, description=(
        "Largest uncompressed column chunk of an uploaded Parquet file: bounds what reading "
        "one row group can decode to."))
    upload_idle_seconds: float = Field(60.0, gt=0, description=(
        "An upload whose body sends nothing for this long is dropped (408)."))
    party_quota_bytes: int = Field(20 << 30, ge=1, description=(
        "Stored uploads of one party, all together, may not exceed this."))
    prune_uploads: bool = Field(True, description=(
        "Delete a party's earlier upload when a new one arrives, unless a run used it."))
    lease_seconds: float = Field(30.0, gt=0, description=(
        "A running job whose worker has not reported for this long is taken over by another "
        "worker (its worker is presumed dead)."))
    worker_seen_seconds: float = Field(15.0, gt=0, description=(
        "A worker that has not reported for this long counts as dead in /health."))
    auth_failures_per_minute: int = Field(20, ge=1, description=(
        "Failed authentications one client address (or one token id) may make per minute "
        "before it gets 429."))
    result_cache_bytes: int = Field(512 * _MIB, ge=0, description=(
        "Memory for result tables kept between page requests."))
    run_memory_bytes: int = Field(0, ge=0, description=(
        "Most memory a run's candidates may take (projected before it compares, about 150 "
        "bytes a candidate); a run that would need more fails at once, saying how many and "
        "what to do. 0: the machine's memory. Runs with blocking or the dask backend hold "
        "no candidates in memory and are not checked."))
    pause_at_stage: str = Field("", description=(
        "Fault-injection tests only: a job entering one of these stages (comma-separated) "
        "waits pause_seconds there, so that a test can kill its worker at that moment."))
    pause_seconds: float = Field(0.0, ge=0)
    fail_at_stage: str = Field("", description=(
        "Fault-injection tests only: a worker's first job raises an unexpected error "
        "(RuntimeError) on entering this stage, so that a test can see it fail once and "
        "the worker take the next job."))

    @model_validator(mode="after")
    def _resolve(self) -> Settings:
        data_dir = Path(self.data_dir).resolve()
        object.__setattr__(self, "data_dir", data_dir)
        if not self.database_url:
            object.__setattr__(self, "database_url", f"sqlite:///{data_dir / 'pprl.db'}")
        if self.service_key_file is None:
            object.__setattr__(self, "service_key_file", data_dir / "service.key")
        return self

    @classmethod
    def from_env(cls, data_dir: Path | None = None, **overrides: object) -> Settings:
        """Settings from ``PPRL_*`` environment variables, then explicit overrides (None:
        not overridden)."""
        values = {k: v for k, v in overrides.items() if v is not None}
        if data_dir is not None:
            values["data_dir"] = data_dir
        return cls(**values)  # type: ignore[arg-type]

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def runs_dir(self) -> Path:
        return self.data_dir / "runs"

    @property
    def exports_dir(self) -> Path:
        """Cohort exports, one folder per approved request."""
        return self.data_dir / "exports"

    @property
    def temp_dir(self) -> Path:
        return self.data_dir / "tmp"

    @property
    def key_path(self) -> Path:
        assert self.service_key_file is not None
        return self.service_key_file

    def prepare(self) -> None:
        """Create the folders (0700) and, on first start, the service key (0600); tighten
        what an older version or another umask left readable."""
        private_files()
        for folder in (self.data_dir, self.uploads_dir, self.runs_dir, self.exports_dir,
                       self.temp_dir):
            folder.mkdir(parents=True, exist_ok=True)
        _remove_stale(self.temp_dir)
        for root, folders, files in os.walk(self.data_dir):
            os.chmod(root, 0o700)
            for name in folders:
                os.chmod(os.path.join(root, name), 0o700)
            for name in files:
                os.chmod(os.path.join(root, name), 0o600)
        key = self.key_path
        if not key.exists():
            try:
                fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another process made it first
                return
            with os.fdopen(fd, "wb") as handle:
                handle.write(secrets.token_bytes(_SERVICE_KEY_BYTES))

    def service_key(self) -> bytes:
        key = self.key_path.read_bytes()
        if len(key) < 16:
            raise ValueError(f"service key file {self.key_path} holds fewer than 16 bytes")
        return key


STALE_SECONDS = 86_400.0  # far longer than any upload may stall (its body times out first)


def _remove_stale(folder: Path) -> None:
    """Spooled uploads a killed process left (up to the upload limit each): removed at the
    next start once a day old, so that no upload still being received is touched."""
    cutoff = time.time() - STALE_SECONDS
    for entry in folder.iterdir():
        with contextlib.suppress(OSError):
            if entry.is_file() and entry.stat().st_mtime < cutoff:
                entry.unlink()
