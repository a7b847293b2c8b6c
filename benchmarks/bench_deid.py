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
import sys
import tempfile
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file

from .measure import run_measured
from .peers import peer_python
from .report import print_table, write_json

DICOGNITO = ["dicognito==0.19.0"]


def make_slices(folder: Path, count: int, patients: int) -> None:
    """``count`` CT slices over ``patients`` patients, 20 slices per series."""
    path = get_testdata_file("CT_small.dcm", download=False)
    assert path is not None
    template = pydicom.dcmread(str(path))
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        patient = i % patients
        template.PatientID = f"BENCH{patient:06d}"
        template.PatientName = f"Family{patient}^Given{patient}"
        template.StudyInstanceUID = f"1.2.826.0.1.3680043.8.498.{patient}"
        template.SeriesInstanceUID = f"1.2.826.0.1.3680043.8.498.{patient}.{i // 20}"
        template.SOPInstanceUID = f"1.2.826.0.1.3680043.8.498.{patient}.{i // 20}.{i}"
        template.InstanceNumber = i
        template.save_as(folder / f"slice_{i:06d}.dcm", enforce_file_format=True)


def run(files: int, workers: int, workdir: Path) -> dict[str, object]:
    slices = workdir / f"ct_{files}"
    if not slices.exists():
        make_slices(slices, files, patients=max(1, files // 100))
    (workdir / "secret").write_bytes(b"benchmark secret, not for real data")
    (workdir / "site").write_bytes(b"benchmark site key")
    out = workdir / "out"
    measured = run_measured([
        sys.executable, "-m", "api.cli", "deid", str(slices), str(out), "--schema", "person",
        "--secret-file", str(workdir / "secret"), "--site-key-file", str(workdir / "site"),
        "--workers", str(workers), "--json"])
    summary = json.loads(measured.stdout)
    assert summary["written"] == files, summary
    peer = run_measured([str(peer_python("dicognito", DICOGNITO)), "-m", "dicognito",
                         "--output-directory", str(workdir / "peer-out"), "--quiet",
                         str(slices)])
    written = sum(1 for _ in (workdir / "peer-out").rglob("*.dcm"))
    assert written == files, f"dicognito wrote {written} of {files} files"
    return {"files": files, "workers": workers, "seconds": round(measured.seconds, 3),
            "files_per_second": round(files / measured.seconds, 1),
            "core_files_per_second": round(files / summary["seconds"], 1),
            "peak_rss_mib": round(measured.peak_rss_bytes / 2**20, 1),
            "peer": DICOGNITO[0], "peer_seconds": round(peer.seconds, 3),
            "peer_files_per_second": round(files / peer.seconds, 1),
            "peer_peak_rss_mib": round(peer.peak_rss_bytes / 2**20, 1),
            "ratio": round(peer.seconds / measured.seconds, 2),
            "machine": platform.machine(), "python": platform.python_version()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/deid.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-deid-") as tmp:
        result = run(args.files, args.workers, Path(tmp))
    print_table([{"tool": f"pprl deid, {result['workers']} processes",
                  "files": result["files"], "seconds": result["seconds"],
                  "files/s": f"{result['files_per_second']} ({result['ratio']}x)",
                  "peak RSS MiB": result["peak_rss_mib"]},
                 {"tool": f"{result['peer']}, 1 process", "files": result["files"],
                  "seconds": result["peer_seconds"],
                  "files/s": result["peer_files_per_second"],
                  "peak RSS MiB": result["peer_peak_rss_mib"]}],
                title="De-identifying CT slices (whole commands, start-up included)")
    write_json(args.output, result)


if __name__ == "__main__":
    main()
