"""``pprl deid-verify``: check de-identified files against their originals, element by element.

Each output file is paired with its input through the run's report, and every element of the
output (file meta, sequences and private elements included) is searched for the input's
identifying values: names, ids, address, phone, free-text descriptions the profile removes,
unshifted dates and unremapped UIDs. Results use a MIDI-B-like vocabulary; the score is the
share of checks passed.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.uid import UID_dictionary

from .dicom_files import lenient_values
from .errors import DeidError
from .profile import ProfileOptions, load_profile

__all__ = ["Check", "VerifyResult", "verify_folder"]

_PASS = {"text removed", "tag retained", "date shifted", "uid changed", "uid consistent"}
_IDENTIFYING_KEYWORDS = ("PatientID", "OtherPatientIDs", "PatientAddress",
                         "PatientTelephoneNumbers", "MedicalRecordLocator", "AccessionNumber")
_DESCRIPTION_VRS = {"LO", "LT", "ST", "UT", "SH", "UC"}
_MIN_DESCRIPTION = 6
_MIN_TERM = 2
_BASIC = ProfileOptions(dates="remove")

Path_ = tuple[int, ...]


@dataclass(frozen=True)
class Check:
    """One check on one file: its outcome in MIDI-B-like words and the element concerned."""

    outcome: str
    element: str

    @property
    def passed(self) -> bool:
        return self.outcome in _PASS


@dataclass
class VerifyResult:
    files: dict[str, list[Check]] = field(default_factory=dict)

    @property
    def checks(self) -> int:
        return sum(len(c) for c in self.files.values())

    @property
    def leaks(self) -> int:
        return sum(not c.passed for checks in self.files.values() for c in checks)

    @property
    def score(self) -> float:
        return 1.0 - self.leaks / self.checks if self.checks else 1.0

    def as_dict(self) -> dict[str, object]:
        return {"score": round(self.score, 6), "checks": self.checks, "leaks": self.leaks,
                "files": {name: _tally(checks) | {"failed": [
                    f"{c.outcome}: {c.element}" for c in checks if not c.passed]}
                    for name, checks in self.files.items()}}

    def lines(self) -> list[str]:
        out = []
        for name, checks in self.files.items():
            tally = ", ".join(f"{n} {o}" for o, n in sorted(_tally(checks).items()))
            out.append(f"{name}: {tally}")
            out.extend(f"  FAIL {c.outcome}: {c.element}" for c in checks if not c.passed)
        out.append(f"score {self.score:.4f} ({self.checks - self.leaks:,} of {self.checks:,} "
                   f"checks passed, {self.leaks:,} identifiers left)")
        return out


def _tally(checks: list[Check]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for check in checks:
        counts[check.outcome] += 1
    return dict(counts)


def _elements(dataset: Dataset, path: Path_ = ()) -> Iterator[tuple[Path_, str, str, object]]:
    """(path, VR, keyword or tag, value) of every element, items included."""
    for element in dataset:
        here = path + (int(element.tag),)
        name = element.keyword or str(element.tag)
        if element.VR == "SQ":
            for index, item in enumerate(element.value or []):
                yield from _elements(item, here + (-1 - index,))
            continue
        yield here, element.VR, name, element.value


def _strings(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, bytes):
        return [value.decode("latin-1")]
    if isinstance(value, (list, tuple, MultiValue)):
        return [str(v) for v in value]
    return [str(value)]


def _removed_by_profile(tag: int) -> bool:
    """Whether the basic profile (no options) removes or replaces this element's value."""
    rule = load_profile().rule_for(tag)
    return rule is not None and rule.action(_BASIC) != "K"


def _identifying(dataset: Dataset) -> tuple[set[str], set[str], set[str]]:
    """Texts, dates and UIDs of the original that must not survive.

    Descriptions count only where the profile removes them and the same text is not also
    the value of an element it keeps (a StudyDescription repeated as a CodeMeaning is a
    code, not an identifier)."""
    texts: set[str] = set()
    descriptions: set[str] = set()
    kept: set[str] = set()
    dates: set[str] = set()
    uids: set[str] = set()
    for path, vr, name, value in _elements(dataset):
        removed = _removed_by_profile(path[-1])
        for text in _strings(value):
            text = text.strip()
            if not text:
                continue
            if vr == "PN":
                texts.update(p.strip() for p in text.replace("=", "^").split("^"))
            elif vr in ("DA", "DT") and len(text) >= 8 and text[:8].isdigit():
                dates.add(text[:8])
            elif vr == "UI":
                if removed and text not in UID_dictionary:
                    uids.add(text)
            elif name in _IDENTIFYING_KEYWORDS:
                texts.add(text)
            elif not removed:
                kept.add(text)
            elif (vr in _DESCRIPTION_VRS and len(text) >= _MIN_DESCRIPTION
                  and (path[-1] >> 16) % 2 == 0):  # private text: the knowledge base decides
                descriptions.add(text)
    texts |= descriptions - kept
    return {t for t in texts if len(t) >= _MIN_TERM and any(c.isalnum() for c in t)}, dates, uids


def _check_pair(original: Dataset, output: Dataset, uid_map: dict[str, set[str]]
                ) -> list[Check]:
    texts, dates, uids = _identifying(original)
    before = {path: (vr, value) for path, vr, _, value in _elements(original)}
    found: list[tuple[str, str, str]] = []  # (element name, VR, text) of the output
    out_meta = list(_elements(output.file_meta)) if output.get("file_meta") is not None else []
    checks: list[Check] = []
    for path, vr, name, value in out_meta + list(_elements(output)):
        old_vr, old_value = before.get(path, (None, None))
        # A code string kept as it was is a defined term (Modality "US"), not an identifier
        # that happens to be spelled the same (an AccessionNumber "US").
        if not (vr == "CS" and old_vr == "CS" and old_value == value):
            found.extend((name, vr, text) for text in _strings(value))
        if path not in before or vr == "SQ":
            continue
        if vr in ("DA", "DT") and _strings(old_value) and any(_strings(old_value)):
            same = _strings(old_value) == _strings(value)
            checks.append(Check("date retained" if same else "date shifted", name))
        elif vr == "UI" and str(old_value) in uids:
            same = str(old_value) == str(value)
            checks.append(Check("uid retained" if same else "uid changed", name))
            if not same:
                uid_map[str(old_value)].add(str(value))
        elif old_value == value and vr not in ("PN",) and not any(
                t in texts for t in _strings(value)):
            checks.append(Check("tag retained", name))
    for term in sorted(texts):
        # Whole words only, so a name part "pre" is not found in "PREDECESSOR".
        pattern = re.compile(rf"(?<!\w){re.escape(term)}(?!\w)", re.IGNORECASE)
        hit = next((name for name, _, text in found if pattern.search(text)), None)
        checks.append(Check("text retained" if hit else "text removed",
                            f"{hit} (a value of the original)" if hit else "identifying text"))
    for name, vr, text in found:
        if vr in ("DA", "DT") and text[:8] in dates and len(text) >= 8:
            checks.append(Check("date retained", name))
        if vr == "UI" and text in uids:
            checks.append(Check("uid retained", name))
    return checks


def _read(path: Path) -> Dataset:
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as e:  # pydicom raises many types on damaged input
        raise DeidError(f"{path}: not readable as DICOM ({type(e).__name__})") from e


def verify_folder(original_dir: Path, out_dir: Path, report: Path) -> VerifyResult:
    """Verify every exported file listed in ``report`` (written by ``pprl deid``).

    Raises:
        DeidError: the report or a file it names is missing or unreadable.
    """
    if not report.is_file():
        raise DeidError(f"report {report} not found: run `pprl deid` first or give --report")
    with report.open(encoding="utf-8", newline="") as handle:
        pairs = [(row["source"], row["output"]) for row in csv.DictReader(handle)
                 if row["status"] in ("written", "unchanged")]
    result = VerifyResult()
    uid_map: dict[str, set[str]] = defaultdict(set)
    per_file_uids: dict[str, set[str]] = {}
    for source, output in pairs:
        with lenient_values():  # values are converted as the checks read them
            original = _read(original_dir / source)
            exported = _read(out_dir / output)
            result.files[output] = _check_pair(original, exported, uid_map)
            per_file_uids[output] = {str(v) for _, vr, _, v in _elements(original)
                                     if vr == "UI" and str(v) in uid_map}
    targets: dict[str, int] = defaultdict(int)
    for mapped in uid_map.values():
        for uid in mapped:
            targets[uid] += 1
    for output, originals in per_file_uids.items():
        consistent = all(len(uid_map[u]) == 1 and targets[next(iter(uid_map[u]))] == 1
                         for u in originals)
        result.files[output].append(
            Check("uid consistent" if consistent else "uid inconsistent", "UIDs across files"))
    return result
