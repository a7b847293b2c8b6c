"""Peer tools (clkhash, anonlink, ...) installed in isolated venvs under ``.peers/``.

Peers pin old libraries (clkhash requires cryptography < 41), so they never enter the
project's ``.venv``; each gets its own venv and is driven through a small script run with that
venv's Python.
"""

from __future__ import annotations

import fcntl
import subprocess
import sys
import venv
from pathlib import Path

__all__ = ["PEERS", "PEERS_DIR", "peer_python", "SCRIPTS_DIR"]

PEERS_DIR = Path(__file__).resolve().parents[2] / ".peers"
SCRIPTS_DIR = Path(__file__).resolve().parent
# Every peer and what its venv holds: the one place these versions are named.
PEERS: dict[str, tuple[str, ...]] = {
    "anonlink": ("anonlink==0.15.3",),
    "clkhash": ("clkhash==0.18.3",),
    "dicognito": ("dicognito==0.19.0",),
    "pycanon": ("pycanon==1.3.6",),
    "splink": ("splink==4.0.17", "pyarrow"),
}


def peer_python(name: str) -> Path:
    """The Python of the venv ``.peers/<name>``, created and filled on first use.

    Safe to call from several threads and processes at once (the test suite installs the peers
    side by side while other tests run): one installs under a file lock, the others wait for it.
    """
    requirements = PEERS[name]
    folder = PEERS_DIR / name
    python = folder / "bin" / "python"
    stamp = folder / "requirements.txt"
    wanted = "\n".join(requirements) + "\n"

    def ready() -> bool:
        return python.exists() and stamp.is_file() and stamp.read_text() == wanted

    if ready():
        return python
    PEERS_DIR.mkdir(parents=True, exist_ok=True)
    with (PEERS_DIR / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ready():  # installed by another while this one waited
            return python
        print(f"installing {', '.join(requirements)} into {folder} ...", file=sys.stderr,
              flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(folder)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        *requirements], check=True)
        stamp.write_text(wanted)
    return python
