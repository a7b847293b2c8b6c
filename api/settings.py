"""Service configuration: where the database and the data folder are, and the limits.

Everything has an embedded default (SQLite file and folders under ``--data-dir``) so that
``pprl serve`` runs with nothing else installed; environment variables override for
production (``PPRL_DATABASE_URL=postgresql+psycopg://...``).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Settings", "DEFAULT_DATA_DIR"]

DEFAULT_DATA_DIR = Path("pprl-data")
_SERVICE_KEY_BYTES = 32


@dataclass(frozen=True)
class Settings:
    """Attributes:
        data_dir: uploads, run results and (by default) the SQLite database and service key.
            With several machines (PostgreSQL), the API and the workers must share it.
        database_url: SQLAlchemy URL.
        max_upload_bytes: larger uploads are refused with 413 while they stream in.
        lease_seconds: a running run whose worker has not reported for this long is taken
            over by another worker (its worker is presumed dead).
        service_key_file: the service's own secret for entity pseudonyms.
    """

    data_dir: Path = DEFAULT_DATA_DIR
    database_url: str = ""
    max_upload_bytes: int = 1 << 30
    lease_seconds: float = 30.0
    service_key_file: Path | None = None

    def __post_init__(self) -> None:
        data_dir = Path(self.data_dir).resolve()
        object.__setattr__(self, "data_dir", data_dir)
        if not self.database_url:
            object.__setattr__(self, "database_url", f"sqlite:///{data_dir / 'pprl.db'}")
        if self.service_key_file is None:
            object.__setattr__(self, "service_key_file", data_dir / "service.key")

    @classmethod
    def from_env(cls, data_dir: Path | None = None, **overrides: object) -> Settings:
        """Settings from ``PPRL_*`` environment variables, then explicit overrides."""
        env = os.environ
        values: dict[str, object] = {
            "data_dir": Path(env.get("PPRL_DATA_DIR", str(DEFAULT_DATA_DIR))),
            "database_url": env.get("PPRL_DATABASE_URL", ""),
            "max_upload_bytes": int(env.get("PPRL_MAX_UPLOAD_BYTES", str(1 << 30))),
            "lease_seconds": float(env.get("PPRL_RUN_LEASE_SECONDS", "30")),
        }
        if env.get("PPRL_SERVICE_KEY_FILE"):
            values["service_key_file"] = Path(env["PPRL_SERVICE_KEY_FILE"])
        if data_dir is not None:
            values["data_dir"] = data_dir
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def runs_dir(self) -> Path:
        return self.data_dir / "runs"

    @property
    def temp_dir(self) -> Path:
        return self.data_dir / "tmp"

    def prepare(self) -> None:
        """Create the folders and, on first start, the service key (owner-readable only)."""
        for folder in (self.data_dir, self.uploads_dir, self.runs_dir, self.temp_dir):
            folder.mkdir(parents=True, exist_ok=True)
        key = self.key_path
        if not key.exists():
            try:
                fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another process made it first
                return
            with os.fdopen(fd, "wb") as handle:
                handle.write(secrets.token_bytes(_SERVICE_KEY_BYTES))

    @property
    def key_path(self) -> Path:
        assert self.service_key_file is not None
        return self.service_key_file

    def service_key(self) -> bytes:
        key = self.key_path.read_bytes()
        if len(key) < 16:
            raise ValueError(f"service key file {self.key_path} holds fewer than 16 bytes")
        return key
