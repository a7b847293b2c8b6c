"""``pprl serve``, ``pprl worker``, ``pprl admin``: running the service on its machine."""

from __future__ import annotations

import ipaddress
import json
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
    help="A job whose worker is silent this long is retried by another. "
         "[env: PPRL_LEASE_SECONDS; default 30]")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command("serve")
@_data_dir
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--workers", type=click.IntRange(min=0), default=1, show_default=True,
              help="Supervised worker processes executing runs (0: run `pprl worker` "
                   "separately).")
@click.option("--max-upload-mb", type=click.IntRange(min=1), default=None,
              help="Largest accepted upload. [env: PPRL_MAX_UPLOAD_BYTES; default 1024 MiB]")
@click.option("--tls-cert", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Serve HTTPS with this certificate (PEM, with its chain).")
@click.option("--tls-key", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="The certificate's private key (PEM).")
@click.option("--allow-insecure-http", is_flag=True,
              help="Bind an address other than loopback without TLS (only behind a reverse "
                   "proxy that terminates TLS; see the README).")
@_lease
def serve_command(data_dir: Path, host: str, port: int, workers: int,
                  max_upload_mb: int | None, tls_cert: Path | None, tls_key: Path | None,
                  allow_insecure_http: bool, lease_seconds: float | None) -> None:
    """Start the linkage service (HTTP API with docs at /docs, plus supervised workers).

    With no configuration it keeps everything under --data-dir (SQLite); set
    PPRL_DATABASE_URL=postgresql+psycopg://user@host/db for PostgreSQL. The database schema
    is migrated on start. A worker that dies is replaced within seconds.
    """
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("give both --tls-cert and --tls-key, or neither")
    tls = tls_cert is not None
    if not tls and not _loopback(host) and not allow_insecure_http:
        raise click.UsageError(
            f"--host {host} is reachable from other machines: tokens and encodings would "
            f"cross the network unencrypted. Give --tls-cert and --tls-key, or, behind a "
            f"reverse proxy that terminates TLS, --allow-insecure-http")
    import uvicorn

    from .app import create_app
    from .db import make_engine, migrate

    settings = Settings.from_env(data_dir, lease_seconds=lease_seconds,
                                 max_upload_bytes=max_upload_mb and max_upload_mb << 20)
    settings.prepare()
    engine = make_engine(settings.database_url)
    migrate(engine)  # before the workers start, so they find the schema in place
    engine.dispose()
    uvicorn.run(create_app(settings, worker_processes=workers, tls=tls), host=host, port=port,
                log_level="info", server_header=False, proxy_headers=False,
                ssl_certfile=str(tls_cert) if tls_cert else None,
                ssl_keyfile=str(tls_key) if tls_key else None)


@click.command("worker")
@_data_dir
@_lease
@click.option("--once", is_flag=True, help="Exit when no job is waiting.")
@click.option("--poll-seconds", type=click.FloatRange(min=0.05), default=1.0,
              show_default=True, help="How often an idle worker looks for jobs.")
def worker_command(data_dir: Path, lease_seconds: float | None, once: bool,
                   poll_seconds: float) -> None:
    """Execute jobs (linkage runs) from the service's database (alone, or beside `pprl
    serve`)."""
    from .jobs.worker import run_worker, worker_process_main

    settings = Settings.from_env(data_dir, lease_seconds=lease_seconds)
    if once:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        click.echo(f"{run_worker(settings, once=True)} job(s) executed")
    else:
        worker_process_main(settings, poll_seconds)


@click.group("admin")
def admin_group() -> None:
    """Service administration, on the server machine."""


def _existing_service(data_dir: Path) -> Settings:
    """The settings of the service whose data is in ``data_dir``; refused where there is none
    (a wrong --data-dir listed nothing, and made an empty service folder there)."""
    settings = Settings.from_env(data_dir)
    if not settings.key_path.is_file():
        raise click.ClickException(f"{data_dir} holds no service data (no {settings.key_path.name}"
                                   f"): give the --data-dir (or PPRL_DATA_DIR) that `pprl serve` "
                                   f"uses")
    return settings


@admin_group.command("token")
@_data_dir
@click.option("--label", default="", help="Who the token is for (kept in the audit log).")
@click.option("--expires-days", type=click.FloatRange(min=0, min_open=True), default=None,
              help="The token stops working after this many days (default: never).")
def admin_token_command(data_dir: Path, label: str, expires_days: float | None) -> None:
    """Make a service administrator token (it creates projects). Printed once, stored hashed."""
    from .admin import create_admin_token

    click.echo(create_admin_token(Settings.from_env(data_dir), label, expires_days))


@admin_group.command("tokens")
@_data_dir
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def admin_tokens_command(data_dir: Path, as_json: bool) -> None:
    """List the administrator tokens (id, label, created, last used, expiry; never a secret)."""
    from .admin import list_admin_tokens

    listed = list_admin_tokens(_existing_service(data_dir))
    if as_json:
        click.echo(json.dumps([t.model_dump() for t in listed], indent=2))
        return
    from .client.cli import token_line

    for token in listed:
        click.echo(token_line(token.model_dump()))


@admin_group.command("revoke")
@_data_dir
@click.argument("token_id")
def admin_revoke_command(data_dir: Path, token_id: str) -> None:
    """Revoke an administrator token by its id."""
    from .admin import revoke_admin_token
    from .errors import ServiceError

    try:
        revoke_admin_token(_existing_service(data_dir), token_id)
    except ServiceError as e:
        raise click.ClickException(e.message) from e
    click.echo(f"administrator token {token_id} revoked")


@admin_group.command("prune")
@_data_dir
def admin_prune_command(data_dir: Path) -> None:
    """Delete the stored files of uploads that are neither a party's latest nor used by any
    run (their records stay, for the audit log)."""
    from .admin import prune_all

    click.echo(f"{prune_all(_existing_service(data_dir))} upload(s) pruned")
