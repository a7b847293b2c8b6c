"""Peer tools (clkhash, anonlink, ...) installed in isolated venvs under ``.peers/``.

Peers pin old libraries (clkhash requires cryptography < 41), so they never enter the
project's ``.venv``; each gets its own venv and is driven through a small script run with that
venv's Python.
"""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

__all__ = ["PEERS_DIR", "peer_python", "SCRIPTS_DIR"]

PEERS_DIR = Path(__file__).resolve().parents[2] / ".peers"
SCRIPTS_DIR = Path(__file__).resolve().parent


def peer_python(name: str, requirements: list[str]) -> Path:
    """The Python of the venv ``.peers/<name>``, created and filled on first use."""
    folder = PEERS_DIR / name
    python = folder / "bin" / "python"
    stamp = folder / "requirements.txt"
    wanted = "\n".join(requirements) + "\n"
    if python.exists() and stamp.is_file() and stamp.read_text() == wanted:
        return python
    print(f"installing {', '.join(requirements)} into {folder} ...", file=sys.stderr, flush=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(folder)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    *requirements], check=True)
    stamp.write_text(wanted)
    return python
