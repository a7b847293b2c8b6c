"""``pprl serve``, ``pprl worker``, ``pprl admin token``: running the service on its machine."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from .settings import DEFAULT_DATA_DIR, Settings

__all__ = ["serve_command", "worker_command", "admin_group"]

_data_dir = click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path), envvar="PPRL_DATA_DIR",
    default=DEFAULT_DATA_DIR, show_default=True,
    help="Uploads, results, service key and (unless PPRL_DATABASE_URL is set) the SQLite "
         "database. [env: PPRL_DATA_DIR]")
_lease = click.option(
    "--lease-seconds", type=click.FloatRange(min=1), default=None,
    help="A run whose worker is silent this long is retried by another. "
         "[env: PPRL_RUN_LEASE_SECONDS; default 30]")


@click.command("serve")
@_data_dir
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--workers", type=click.IntRange(min=0), default=1, show_default=True,
              help="Worker processes executing runs (0: run `pprl worker` separately).")
@click.option("--max-upload-mb", type=click.IntRange(min=1), default=None,
              help="Largest accepted upload. [env: PPRL_MAX_UPLOAD_BYTES; default 1024 MiB]")
@_lease
def serve_command(data_dir: Path, host: str, port: int, workers: int,
                  max_upload_mb: int | None, lease_seconds: float | None) -> None:
    """Start the linkage service (HTTP API with docs at /docs, plus worker processes).

    With no configuration it keeps everything under --data-dir (SQLite); set
    PPRL_DATABASE_URL=postgresql+psycopg://user@host/db for PostgreSQL. The database schema
    is migrated on start.
    """
    import uvicorn

    from .app import create_app
    from .db import make_engine, migrate

    settings = Settings.from_env(data_dir, lease_seconds=lease_seconds,
                                 max_upload_bytes=max_upload_mb and max_upload_mb << 20)
    settings.prepare()
    engine = make_engine(settings.database_url)
    migrate(engine)  # before the workers start, so they find the schema in place
    engine.dispose()
    uvicorn.run(create_app(settings, worker_processes=workers), host=host, port=port,
                log_level="info")


@click.command("worker")
@_data_dir
@_lease
@click.option("--once", is_flag=True, help="Exit when no run is waiting.")
@click.option("--poll-seconds", type=click.FloatRange(min=0.05), default=1.0,
              show_default=True, help="How often an idle worker looks for runs.")
def worker_command(data_dir: Path, lease_seconds: float | None, once: bool,
                   poll_seconds: float) -> None:
    """Execute linkage runs from the service's database (alone, or beside `pprl serve`)."""
    from .worker import run_worker, worker_process_main

    settings = Settings.from_env(data_dir, lease_seconds=lease_seconds)
    if once:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        click.echo(f"{run_worker(settings, once=True)} run(s) executed")
    else:
        worker_process_main(settings, poll_seconds)


@click.group("admin")
def admin_group() -> None:
    """Service administration, on the server machine."""


@admin_group.command("token")
@_data_dir
@click.option("--label", default="", help="Who the token is for (kept in the audit log).")
def admin_token_command(data_dir: Path, label: str) -> None:
    """Make a service administrator token (it creates projects). Printed once, stored hashed."""
    from .admin import create_admin_token

    click.echo(create_admin_token(Settings.from_env(data_dir), label))
