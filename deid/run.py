"""``pprl deid``: a folder of DICOM files in, de-identified files, manifest, encodings and
report out.

Files are processed in parallel (each worker needs only the file and the site key); the
patients' identifiers are then tokenized in one encoder call with the project's schema and
linkage secret, and the manifest, the encodings file and the report are written atomically.
OUT_DIR records the settings that made it and is marked incomplete while a run works
(``output_folder``); re-running resumes and gives identical files.
"""

from __future__ import annotations

import csv
import hashlib
import io
import multiprocessing
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pyarrow as pa
from tqdm import tqdm

from tokenizer.encoder import ClkEncoder
from tokenizer.encodings_file import AtomicFile
from tokenizer.keys import key_check_value
from tokenizer.normalize import Normalizer, choose_kinds
from tokenizer.schema_model import Schema

from .errors import DeidError
from .manifest import ManifestRow, write_manifest, write_patient_encodings, write_study_attributes
from .output_folder import DeidSettings, OutputFolder, check_folders
from .pixels import RegionRule
from .process import FileOutcome, FileProcessor
from .profile import ProfileOptions

__all__ = ["DeidReport", "deidentify_folder", "report_path_for", "quarantine_dir_for",
           "MANIFEST_NAME", "ENCODINGS_NAME", "ATTRIBUTES_NAME", "REPORT_ERRORS"]

MANIFEST_NAME = "manifest.parquet"
ENCODINGS_NAME = "encodings.parquet"
ATTRIBUTES_NAME = "attributes.parquet"
REPORT_ERRORS = "surrogateescape"
"""How the report's text is encoded and decoded beside UTF-8 (see ``_write_report``)."""
_EXPORTED = ("written", "unchanged")
_processor: FileProcessor | None = None


@dataclass(frozen=True)
class DeidReport:
    """What a run did; ``outcomes`` in input path order."""

    outcomes: list[FileOutcome]
    patients: int
    rejected_patients: int
    manifest: Path
    report: Path
    seconds: float
    encodings: Path | None = None
    removed: int = 0
    """Files of an earlier run that are no output of this one, removed from OUT_DIR."""

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)


def report_path_for(out_dir: Path) -> Path:
    """The report lists input file names, which may identify: it goes beside OUT_DIR, not
    into the folder that is exported. OUT_DIR is resolved first: ``.`` has no name."""
    out_dir = out_dir.resolve()
    return out_dir.with_name(out_dir.name + ".deid-report.csv")


def quarantine_dir_for(out_dir: Path) -> Path:
    """Copies of the inputs that could not be de-identified, beside OUT_DIR (they hold
    identifiers), under their input paths, for someone to look at."""
    out_dir = out_dir.resolve()
    return out_dir.with_name(out_dir.name + ".quarantine")


def _quarantine(in_dir: Path, out_dir: Path, outcomes: list[FileOutcome]) -> None:
    """Copy this run's quarantined inputs beside OUT_DIR; copies of an earlier run's that
    are no longer quarantined go."""
    target_dir = quarantine_dir_for(out_dir)
    current = {o.source for o in outcomes if o.status == "quarantined"}
    if target_dir.is_dir():
        for stale in [p for p in target_dir.rglob("*") if p.is_file()]:
            if stale.relative_to(target_dir).as_posix() not in current:
                stale.unlink()
    for source in sorted(current):
        target = AtomicFile(target_dir / source)
        try:
            shutil.copyfile(in_dir / source, target.temp)
        except BaseException:
            target.discard()
            raise
        target.commit()


def _init_worker(processor: FileProcessor) -> None:
    """Workers ignore Ctrl-C; the parent alone stops the run. A worker killed by it loses its
    task, and the parent, whose SIGINT may be taken by another of its threads, would wait for
    that result forever; with every worker still going, the next result wakes it."""
    global _processor
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _processor = processor


def _run_one(path: Path) -> FileOutcome:
    assert _processor is not None
    return _processor(path)


def _inputs(in_dir: Path) -> list[Path]:
    """Every regular file under ``in_dir`` in path order; links to folders are not followed.
    One ``scandir`` per folder: a ``stat`` per file costs seconds on a large export."""
    found: list[Path] = []
    pending = [in_dir]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(Path(entry.path))
                elif entry.is_file():
                    found.append(Path(entry.path))
    return sorted(found)


def _outcomes(processor: FileProcessor, paths: list[Path], workers: int
              ) -> Iterator[FileOutcome]:
    if workers <= 1 or len(paths) < 2 * workers:
        yield from map(processor, paths)
        return
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    with context.Pool(workers, _init_worker, (processor,)) as pool:
        yield from pool.imap(_run_one, paths, chunksize=8)


def _settle_duplicates(processor: FileProcessor, in_dir: Path, outcomes: list[FileOutcome]
                       ) -> list[FileOutcome]:
    """Inputs sharing a SOPInstanceUID share an output file: the first in path order owns it
    (rewritten from it, as parallel workers may have finished in any order), the others are
    reported as duplicates and not exported."""
    owner: dict[str, FileOutcome] = {}
    contested: set[str] = set()
    settled = []
    for outcome in outcomes:
        if outcome.status in _EXPORTED and outcome.output in owner:
            first = owner[outcome.output]
            contested.add(first.source)
            settled.append(replace(outcome, status="duplicate", output="", reason=(
                f"same SOPInstanceUID as {first.source}, which is exported")))
            continue
        if outcome.status in _EXPORTED:
            owner[outcome.output] = outcome
        settled.append(outcome)
    return [replace(processor(in_dir / o.source), status=o.status)
            if o.source in contested else o for o in settled]


def _tokenize(outcomes: list[FileOutcome], schema: Schema, secret: bytes,
              kinds: Mapping[str, str]) -> dict[tuple[str, str], tuple[bytes, int] | str]:
    """CLK and popcount per patient (from the patient's first file in path order), or the
    reason its identifiers were rejected. The Patient module's values go through the same
    normaliser, with the same ``kinds``, as `pprl tokenize` applies to every provider's rows;
    columns it cannot fill are passed empty, as an empty CSV cell would be."""
    first: dict[tuple[str, str], dict[str, str]] = {}
    for outcome in outcomes:
        if outcome.patient is not None and outcome.patient not in first:
            first[outcome.patient] = outcome.columns
    if not first:
        return {}
    encoder = ClkEncoder(schema, secret)
    keys = list(first)
    normalized = Normalizer(schema, kinds).apply(
        {c: pa.array([first[k].get(c, "") for k in keys], pa.string())
         for c in encoder.required_columns})
    encoded = encoder.encode(normalized.columns)
    result: dict[tuple[str, str], tuple[bytes, int] | str] = {
        keys[r.index]: f"identifiers rejected by the schema: {r.describe()}"
        for r in encoded.rejects}
    for index, problems in normalized.rejected.items():
        result[keys[index]] = "identifiers rejected: " + "; ".join(
            f"{column} {reason}" for column, reason in problems)
    valid = [k for k, ok in zip(keys, encoded.valid.tolist(), strict=True) if ok]
    for key, clk, popcount in zip(valid, encoded.clks, encoded.popcounts.tolist(), strict=True):
        result.setdefault(key, (clk.tobytes(), int(popcount)))
    return result


def _write_report(path: Path, outcomes: list[FileOutcome],
                  clks: dict[tuple[str, str], tuple[bytes, int] | str]) -> None:
    """UTF-8, except that an input name which is not (Linux names are bytes: a Latin-1
    system's ``caf\\xe9.dcm``) is written as its own bytes (``surrogateescape``), so that
    ``deid-verify``, reading it back the same way, finds the file."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["source", "status", "reason", "output"])
    for o in outcomes:
        token = clks.get(o.patient) if o.patient is not None else None
        reason = token if isinstance(token, str) else o.reason
        writer.writerow([o.source, o.status, reason, o.output])
    file = AtomicFile(path)
    try:
        file.temp.write_text(text.getvalue(), encoding="utf-8", errors=REPORT_ERRORS)
        file.commit()
    except BaseException:
        file.discard()
        raise


def _remove_stale_temps(out_dir: Path) -> None:
    """Temporary files of a run that was killed are never outputs: remove them."""
    for stale in out_dir.rglob(".*.tmp"):
        stale.unlink(missing_ok=True)


def _studies(exported: list[FileOutcome]) -> list[tuple[str, str, str, str, str, int, int]]:
    """One row per study of the exported files, in pseudonym and study order."""
    studies: dict[tuple[str, str], list[FileOutcome]] = {}
    for outcome in exported:
        studies.setdefault((outcome.pseudonym, outcome.study_uid), []).append(outcome)
    rows = []
    for (pseudonym, study), files in sorted(studies.items()):
        first = next((f for f in files if f.modality), files[0])
        body = next((f.body_part for f in files if f.body_part), "")
        date = next((f.study_date for f in files if f.study_date), "")
        rows.append((pseudonym, study, first.modality, body, date,
                     len({f.series_uid for f in files}), len(files)))
    return rows


def _settings(schema: Schema, secret: bytes, site_key: bytes, options: ProfileOptions,
              allow_burned_in: bool, pixel_rules: list[RegionRule] | None,
              provider: str, kinds: Mapping[str, str]) -> DeidSettings:
    rules = None if pixel_rules is None else hashlib.sha256(
        repr([asdict(r) for r in pixel_rules]).encode()).hexdigest()
    return DeidSettings(asdict(options), schema.fingerprint, key_check_value(secret),
                        key_check_value(site_key, "site key"), allow_burned_in, rules, provider,
                        dict(sorted(kinds.items())))


def deidentify_folder(in_dir: Path, out_dir: Path, schema: Schema, secret: bytes,
                      site_key: bytes, options: ProfileOptions, *,
                      allow_burned_in: bool = False, workers: int = 1,
                      report_path: Path | None = None, progress: bool | None = None,
                      pixel_rules: list[RegionRule] | None = None, provider: str = "imaging",
                      replace: bool = False, kinds: Mapping[str, str] | None = None
                      ) -> DeidReport:
    """De-identify every file under ``in_dir`` into ``out_dir``.

    Args:
        secret: the linkage secret shared by the project's providers; keys the CLKs.
        site_key: this site's own key; keys pseudonyms, UIDs and date shifts.
        allow_burned_in: export images that may show identifiers in their pixels.
        pixel_rules: the Clean Pixel Data option: blank these regions of matching images
            (which are then exported); None if the option is not selected.
        workers: processes; the output does not depend on it.
        provider: the party label of the encodings file.
        replace: rebuild an ``out_dir`` made with other settings beside it and swap it in.
        kinds: feature -> normalisation kind of the Patient module's values; None: what
            ``pprl tokenize`` uses by default (:func:`tokenizer.normalize.choose_kinds`).

    Raises:
        DeidError: ``in_dir`` is not a folder; ``out_dir`` is, contains or lies in it; the
            site key equals the linkage secret; ``out_dir`` was made with other settings
            (without ``replace``) or is a folder ``pprl deid`` did not make.
    """
    started = time.perf_counter()
    check_folders(in_dir, out_dir)
    out_dir = out_dir.resolve()  # `.` or `..` has no name to derive the rebuild folder from
    if site_key == secret:
        raise DeidError("the site key is the linkage secret: the site key must be this site's "
                        "own (make one with `pprl keygen`), or the linkage unit could "
                        "recompute pseudonyms and UIDs")
    kinds = choose_kinds(schema) if kinds is None else kinds
    folder = OutputFolder(out_dir, _settings(schema, secret, site_key, options,
                                             allow_burned_in, pixel_rules, provider, kinds),
                          replace=replace)
    folder.prepare()
    _remove_stale_temps(folder.work)
    paths = _inputs(in_dir)
    processor = FileProcessor(in_dir, folder.work, options, site_key, allow_burned_in,
                              pixel_rules)
    show = sys.stderr.isatty() if progress is None else progress
    outcomes = list(tqdm(_outcomes(processor, paths, workers), total=len(paths), unit="file",
                         disable=not show, desc=f"de-identifying {in_dir.name}",
                         file=sys.stderr))
    outcomes = _settle_duplicates(processor, in_dir, outcomes)
    exported = [o for o in outcomes if o.status in _EXPORTED and o.patient is not None]
    removed = folder.prune(o.output for o in exported)
    clks = _tokenize(exported, schema, secret, folder.settings.normalization)
    rows: list[ManifestRow] = []
    encoded: dict[str, tuple[bytes, int]] = {}
    for o in exported:
        assert o.patient is not None
        token = clks[o.patient]
        clk, popcount = token if not isinstance(token, str) else (None, None)
        if clk is not None and popcount is not None:
            encoded[o.pseudonym] = (clk, popcount)
        rows.append((o.pseudonym, clk, popcount, o.study_uid, o.series_uid, o.sop_uid,
                     o.modality, o.study_date, o.output))
    key_check = folder.settings.linkage_key_check
    write_manifest(folder.work / MANIFEST_NAME, rows, schema, key_check)
    write_patient_encodings(folder.work / ENCODINGS_NAME, encoded, schema, provider, key_check)
    write_study_attributes(folder.work / ATTRIBUTES_NAME, _studies(exported), provider,
                           real_dates=options.dates == "full")
    _quarantine(in_dir, out_dir, outcomes)
    report = report_path or report_path_for(out_dir)
    _write_report(report, outcomes, clks)
    folder.finish()
    rejected = sum(isinstance(v, str) for v in clks.values())
    return DeidReport(outcomes, len(clks), rejected, out_dir / MANIFEST_NAME, report,
                      time.perf_counter() - started, out_dir / ENCODINGS_NAME, removed)
