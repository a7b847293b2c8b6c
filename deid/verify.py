"""``pprl deid-verify``: check de-identified files against their originals, element by element.

Each output file is paired with its input through the run's report, and every element of the
output (file meta, sequences and private elements included) is searched for the input's
identifiers in the forms they take elsewhere (``deid.identifiers``): the patient's names in
any case and order, ids, the birth date and, unless dates were kept, every other date of the
original, in DA, ISO, US and European forms and inside free text, phone numbers by their
digits, the address's street line, city and ZIP each alone, other people's names, and UIDs
the profile replaces. Values that are not identifiers (a contrast agent, a transfer syntax, a
device model) are not looked for. Each finding names the element's path and the kind of
identifier, never the value, once. The score is the share of checks passed.

A value pydicom cannot convert (a US of odd length) cannot be searched: the element is
skipped and, in an output file, is a failed check of its own ("value unreadable", naming its
path, tag and VR), so the other elements and files are still checked and the result says
what was not. It is no identifier found: the CLI tells the two apart by its exit code.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag
from pydicom.uid import UID_dictionary
from pydicom.valuerep import PersonName

from .dicom_files import lenient_values
from .errors import DeidError
from .identifiers import IdentifierSet, fold
from .identity import identity_of, name_parts
from .output_folder import SETTINGS_NAME, DeidSettings
from .profile import ProfileOptions, load_profile
from .run import REPORT_ERRORS
from .transform import DUMMY_DATE

__all__ = ["Check", "VerifyResult", "verify_folder"]

_PASS = {"text removed", "date shifted", "uid changed", "uid consistent"}
_UNREADABLE = "value unreadable"
_ID_KEYWORDS = ("PatientID", "OtherPatientIDs", "MedicalRecordLocator", "AccessionNumber")
# Numbers, times and binary values hold no text identifier; searching them would only find
# digits that happen to spell a ZIP or a phone number.
_NOT_TEXT_VRS = {"DS", "IS", "TM", "AS", "US", "SS", "UL", "SL", "FL", "FD", "SV", "UV",
                 "AT", "OB", "OW", "OF", "OD", "OL", "OV"}
_DATE_VRS = {"DA", "DT"}

Tags = tuple[int, ...]


@dataclass(frozen=True)
class Check:
    """One check on one file: its outcome in MIDI-B-like words, the element concerned (a
    path such as ``SourceImageSequence[0].ImageComments``) and the kind of identifier."""

    outcome: str
    element: str
    kind: str = ""

    @property
    def passed(self) -> bool:
        return self.outcome in _PASS

    def __str__(self) -> str:
        kind = f" ({self.kind})" if self.kind else ""
        return f"{self.outcome}{kind}: {self.element}"


@dataclass
class VerifyResult:
    files: dict[str, list[Check]] = field(default_factory=dict)

    @property
    def checks(self) -> int:
        return sum(len(c) for c in self.files.values())

    @property
    def leaks(self) -> int:
        """Failed checks that found an identifier."""
        return sum(not c.passed and c.outcome != _UNREADABLE
                   for checks in self.files.values() for c in checks)

    @property
    def unreadable(self) -> int:
        """Output elements whose value could not be read, so could not be checked."""
        return sum(c.outcome == _UNREADABLE for checks in self.files.values() for c in checks)

    @property
    def score(self) -> float:
        failed = self.leaks + self.unreadable
        return 1.0 - failed / self.checks if self.checks else 1.0

    def as_dict(self) -> dict[str, object]:
        return {"score": round(self.score, 6), "checks": self.checks, "leaks": self.leaks,
                "unreadable": self.unreadable,
                "files": {name: _tally(checks) | {"failed": [
                    str(c) for c in checks if not c.passed]}
                    for name, checks in self.files.items()}}

    def lines(self) -> list[str]:
        out = []
        for name, checks in self.files.items():
            tally = ", ".join(f"{n} {o}" for o, n in sorted(_tally(checks).items()))
            out.append(f"{name}: {tally}")
            out.extend(f"  FAIL {c}" for c in checks if not c.passed)
        unread = f", {self.unreadable:,} values unreadable" if self.unreadable else ""
        passed = self.checks - self.leaks - self.unreadable
        out.append(f"score {self.score:.4f} ({passed:,} of {self.checks:,} checks passed, "
                   f"{self.leaks:,} identifiers left{unread})")
        return out


def _tally(checks: list[Check]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for check in checks:
        counts[check.outcome] += 1
    return dict(counts)


@dataclass(frozen=True)
class _Element:
    """``readable`` False: the value could not be converted (``value`` is None, ``vr`` the
    one it was read with)."""

    tags: Tags
    path: str
    vr: str
    value: object
    readable: bool = True


def _unreadable(dataset: Dataset, tag: BaseTag, tags: Tags, path: str) -> _Element:
    """The element whose value pydicom cannot convert, by its path and tag, without its
    value (a failed conversion's message shows the bytes)."""
    try:
        vr = dataset.get_item(tag).VR or dictionary_VR(tag)
    except KeyError:
        vr = "UN"
    name, number = keyword_for_tag(tag), str(tag).replace(" ", "")
    shown = f"{path}{name} {number}" if name else f"{path}{number}"
    return _Element(tags + (int(tag),), shown, vr, None, readable=False)


def _elements(dataset: Dataset, tags: Tags = (), path: str = "") -> Iterator[_Element]:
    """Every element, items included, with its tag path and a readable path."""
    for tag in dataset.keys():  # noqa: SIM118 (iterating a Dataset converts, and may fail)
        try:
            element = dataset[tag]
        except Exception:  # pydicom raises many types on a value it cannot convert
            yield _unreadable(dataset, tag, tags, path)
            continue
        name = element.keyword or str(element.tag).replace(" ", "")
        here, shown = tags + (int(element.tag),), f"{path}{name}"
        if element.VR == "SQ":
            for index, item in enumerate(element.value or []):
                yield from _elements(item, here + (-1 - index,), f"{shown}[{index}].")
            continue
        yield _Element(here, shown, element.VR, element.value)


def _strings(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, bytes):
        return [value.decode("latin-1")]
    if isinstance(value, (list, tuple, MultiValue)):
        return [str(v) for v in value]
    return [str(value)]


def _name_parts(value: object) -> list[str]:
    """Names of every group (alphabetic, ideographic, phonetic) of each PN value."""
    return [part for text in _strings(value) for part in name_parts(PersonName(text))]


def _identifiers(original: Dataset, options: ProfileOptions
                 ) -> tuple[IdentifierSet, set[str], set[str]]:
    """The original's identifiers to hunt for; its dates (``YYYYMMDD``) that must not
    survive in date elements; its UIDs that the profile replaces."""
    identity = identity_of(original)
    profile = load_profile()
    patient_names = [identity.family_name, identity.given_name, *identity.middle_names,
                     *identity.group_names]
    others: list[str] = []
    ids: list[str] = [identity.patient_id, *(i for _, i in identity.other_ids)]
    dates: set[str] = set()
    uids: set[str] = set()
    for element in _elements(original):
        texts = [t.strip() for t in _strings(element.value) if t.strip()]
        keyword = element.path.rsplit(".", 1)[-1]
        if element.vr == "PN":
            others += _name_parts(element.value)
        elif element.vr in _DATE_VRS:
            dates.update(t[:8] for t in texts if len(t) >= 8 and t[:8].isdigit())
        elif element.vr == "UI":
            rule = profile.rule_for(element.tags[-1])
            if rule is not None and rule.action(options) != "K":
                uids.update(t for t in texts if t not in UID_dictionary)
        elif keyword in _ID_KEYWORDS:
            ids += texts
    dates.discard(identity.birth_date[:8])
    dates.discard(DUMMY_DATE)  # the profile's own dummy (D) for a date identifies no one
    birth_date = "" if identity.birth_date[:8] == DUMMY_DATE else identity.birth_date
    kept_dates = options.dates == "full"
    identifiers = IdentifierSet.build(
        names=patient_names, ids=ids, birth_date=birth_date,
        dates=() if kept_dates else sorted(dates), phones=identity.phones,
        address=identity.address, other_names=others, uids=uids)
    return identifiers, set() if kept_dates else dates, uids


def _check_pair(original: Dataset, output: Dataset, options: ProfileOptions,
                uid_map: dict[str, set[str]]) -> list[Check]:
    identifiers, dates, uids = _identifiers(original, options)
    before = {e.tags: e for e in _elements(original)}
    meta = list(_elements(output.file_meta, (), "FileMetaInformation.")) \
        if output.get("file_meta") is not None else []
    checks: list[Check] = []
    findings: dict[tuple[str, str], None] = {}  # (path, kind), in order, once each
    found_patterns: set[int] = set()
    for element in meta + list(_elements(output)):
        if not element.readable:
            checks.append(Check(_UNREADABLE, element.path, element.vr))
            continue
        old = before.get(element.tags)
        texts = _strings(element.value)
        skip = {"uid"}
        if element.vr in _DATE_VRS:
            if dates and old is not None and any(_strings(old.value)):
                same = _strings(old.value) == texts
                checks.append(Check("date retained" if same else "date shifted",
                                    element.path, "date"))
                skip.add("date")  # checked just now; the birth date is still looked for
        elif element.vr == "UI":
            if old is not None and str(old.value) in uids:
                same = str(old.value) == str(element.value)
                checks.append(Check("uid retained" if same else "uid changed", element.path,
                                    "uid"))
                if not same:
                    uid_map[str(old.value)].add(str(element.value))
            continue
        # A code string kept as it was is a defined term (Modality "US"), not an identifier
        # that happens to be spelled the same (an AccessionNumber "US").
        elif element.vr in _NOT_TEXT_VRS or (element.vr == "CS" and old is not None
                                              and old.vr == "CS" and old.value == element.value):
            continue
        for text in texts:
            folded = fold(text)[0]
            for number, identifier in enumerate(identifiers.identifiers):
                if identifier.kind not in skip and identifier.pattern.search(folded):
                    found_patterns.add(number)
                    findings[(element.path, identifier.kind)] = None
    checks += [Check("text retained", path, kind) for path, kind in findings]
    checks += [Check("text removed", "every element", identifier.kind)
               for number, identifier in enumerate(identifiers.identifiers)
               if number not in found_patterns and identifier.kind != "uid"]
    return checks


def _read(path: Path) -> Dataset:
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as e:  # pydicom raises many types on damaged input
        raise DeidError(f"{path}: not readable as DICOM ({type(e).__name__})") from e


def _options_of(out_dir: Path) -> ProfileOptions:
    """The options the run recorded (``deid-settings.json``); the defaults if it did not."""
    settings = DeidSettings.from_file(out_dir / SETTINGS_NAME)
    return ProfileOptions(**settings.options) if settings is not None else ProfileOptions()


def verify_folder(original_dir: Path, out_dir: Path, report: Path) -> VerifyResult:
    """Verify every exported file listed in ``report`` (written by ``pprl deid``).

    Raises:
        DeidError: the report or a file it names is missing or unreadable.
    """
    if not report.is_file():
        raise DeidError(f"report {report} not found: run `pprl deid` first or give --report")
    with report.open(encoding="utf-8", errors=REPORT_ERRORS, newline="") as handle:
        pairs = [(row["source"], row["output"]) for row in csv.DictReader(handle)
                 if row["status"] in ("written", "unchanged")]
    options = _options_of(out_dir)
    result = VerifyResult()
    uid_map: dict[str, set[str]] = defaultdict(set)
    per_file_uids: dict[str, set[str]] = {}
    for source, output in pairs:
        with lenient_values():  # values are converted as the checks read them
            original = _read(original_dir / source)
            exported = _read(out_dir / output)
            result.files[output] = _check_pair(original, exported, options, uid_map)
            per_file_uids[output] = {str(e.value) for e in _elements(original)
                                     if e.vr == "UI" and str(e.value) in uid_map}
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
