"""De-identification speed: ``pprl deid`` on CT slices (target: 200 files/s on 2 cores).

Slices are copies of pydicom's bundled ``CT_small.dcm`` (no download), each with its own
patient, study, series and instance UIDs, so the run does the work a real folder needs:
tokenizing every patient, remapping every UID, writing every file. The peer, dicognito
(installed in its own venv under ``.peers/``), de-identifies the same slices in the same run
(one process: it has no parallel mode). The table reports files/s of each whole command
(start-up included), the ratio, and the peak RSS of each process tree.

    python -m benchmarks.bench_deid --files 2000 --workers 2
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pydicom
from pydicom.data import get_testdata_file

from .measure import run_measured
from .peers import PEERS, peer_python
from .report import print_table, write_json

DICOGNITO = PEERS["dicognito"]


def make_slices(folder: Path, count: int, patients: int) -> None:
    """``count`` CT slices: ``patients`` patients in turn, one study each, 20 slices per
    series (as a scanner exports them: consecutive files of a series)."""
    path = get_testdata_file("CT_small.dcm", download=False)
    assert path is not None
    template = pydicom.dcmread(str(path))
    folder.mkdir(parents=True, exist_ok=True)
    per_patient = max(1, count // patients)
    for i in range(count):
        patient, slice_number = divmod(i, per_patient)
        series = slice_number // 20
        template.PatientID = f"BENCH{patient:06d}"
        template.PatientName = f"Family{patient}^Given{patient}"
        template.StudyInstanceUID = f"1.2.826.0.1.3680043.8.498.{patient}"
        template.SeriesInstanceUID = f"1.2.826.0.1.3680043.8.498.{patient}.{series}"
        template.SOPInstanceUID = f"1.2.826.0.1.3680043.8.498.{patient}.{series}.{i}"
        template.InstanceNumber = slice_number % 20 + 1
        template.save_as(folder / f"slice_{i:06d}.dcm", enforce_file_format=True)


def run(files: int, workers: int, workdir: Path) -> dict[str, Any]:
    """Both tools on the same ``files`` slices; rows for the table, ``speedup`` = peer time /
    our time."""
    slices = workdir / f"ct_{files}"
    if not slices.exists():
        make_slices(slices, files, patients=max(1, files // 100))
    (workdir / "secret").write_bytes(b"benchmark secret, not for real data")
    (workdir / "site").write_bytes(b"benchmark site key")
    out = workdir / "deid-out"
    ours = run_measured([
        sys.executable, "-m", "api.cli", "deid", str(slices), str(out), "--schema", "person",
        "--secret-file", str(workdir / "secret"), "--site-key-file", str(workdir / "site"),
        "--workers", str(workers), "--json"])
    summary = json.loads(ours.stdout)
    assert summary["written"] == files, summary
    verified = json.loads(subprocess.run(
        [sys.executable, "-m", "api.cli", "deid-verify", str(slices), str(out), "--json"],
        capture_output=True, text=True, check=False).stdout)
    peer = run_measured([str(peer_python("dicognito")), "-m", "dicognito",
                         "--output-directory", str(workdir / "peer-out"), "--quiet",
                         str(slices)])
    written = sum(1 for _ in (workdir / "peer-out").rglob("*.dcm"))
    assert written == files, f"dicognito wrote {written} of {files} files"
    rows = [{"tool": f"pprl deid, {workers} processes", "files": files,
             "seconds": round(ours.seconds, 2), "files_per_s": round(files / ours.seconds, 1),
             "run_files_per_s": round(files / summary["seconds"], 1),
             "peak_rss_mib": round(ours.peak_rss_bytes / 2**20, 1)},
            {"tool": f"{DICOGNITO[0]}, 1 process", "files": files,
             "seconds": round(peer.seconds, 2), "files_per_s": round(files / peer.seconds, 1),
             "run_files_per_s": None, "peak_rss_mib": round(peer.peak_rss_bytes / 2**20, 1)}]
    return {"benchmark": "deid", "results": rows,
            "speedup": round(peer.seconds / ours.seconds, 2),
            "ours_verified": {"checks": verified["checks"], "leaks": verified["leaks"]},
            "definitions": {
                "seconds": "the whole command, start-up included, on CT slices (copies of "
                           "pydicom's CT_small.dcm, 100 per patient, 20 per series, every "
                           "UID distinct); "
                           "files_per_s and the speed-up are taken from it",
                "run_files_per_s": "files / the run's own time as `pprl deid --json` reports "
                                   "it: reading, de-identifying, tokenizing, writing files, "
                                   "manifest and report, without interpreter start-up and "
                                   "imports",
                "peak_rss_mib": "the command's whole process tree"},
            "machine": {"machine": platform.machine(), "python": platform.python_version()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/deid.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-deid-") as tmp:
        result = run(args.files, args.workers, Path(tmp))
    print_table(result["results"], title="De-identifying CT slices")
    print(f"speed-up over {DICOGNITO[0]}: {result['speedup']}x")
    write_json(args.output, result)


if __name__ == "__main__":
    main()
