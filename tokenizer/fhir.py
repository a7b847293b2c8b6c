"""FHIR R4 Patient resources as the raw values of the ``person`` columns.

EHRs export patients as FHIR (bulk-export NDJSON, or a Bundle). :func:`patient_columns` decides
which element feeds which column, as ``deid.identity.person_columns`` does for the DICOM
Patient module; normalising is left to the one normaliser (``tokenizer.normalize``), so a
FHIR patient, the same patient's CSV row and DICOM Patient module give the same CLK.

A resource that cannot be read is reported with a reason that names the element, never its
value: the reasons are shown on screen and summarised, the values stay in the EHR.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

from .errors import InputError

__all__ = ["FHIR_COLUMNS", "RECORD_ID", "NDJSON_SUFFIXES", "BUNDLE_SUFFIXES",
           "MalformedResource", "patient_columns", "read_patients"]

NDJSON_SUFFIXES = {".ndjson"}
BUNDLE_SUFFIXES = {".json"}
RECORD_ID = "id"
"""The column used as record id when none is given: the Patient's logical id, not its MRN."""
FHIR_COLUMNS = ("id", "mrn", "given_name", "surname", "date_of_birth", "sex", "address", "city",
                "zip", "phone")

_MRN_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0203"
_RESOURCE_TYPE = re.compile(r"[A-Z][A-Za-z]{0,63}")
# Names that are not the person's current legal one (FHIR R4 HumanName.use).
_NOT_CURRENT_NAMES = {"old", "maiden", "nickname", "anonymous"}
_TYPE_NAMES: dict[type, str] = {str: "a string", list: "a list", dict: "an object",
                                int: "an integer"}

Resource = dict[str, Any]


class MalformedResource(ValueError):
    """A resource that cannot be read; ``reason`` names the element, never its value."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _get(item: Resource, key: str, kind: type, where: str) -> Any:
    """``item[key]`` if present and of ``kind``, None if absent (or JSON null)."""
    value = item.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise MalformedResource(f"has {where}.{key} that is not {_TYPE_NAMES[kind]}")
    return value


def _objects(item: Resource, key: str, where: str) -> list[Resource]:
    values = _get(item, key, list, where) or []
    if not all(isinstance(v, dict) for v in values):
        raise MalformedResource(f"has {where}.{key} that is not a list of objects")
    return values


def _strings(item: Resource, key: str, where: str) -> list[str]:
    values = _get(item, key, list, where) or []
    if not all(isinstance(v, str) for v in values):
        raise MalformedResource(f"has {where}.{key} that is not a list of strings")
    return values


def _current(item: Resource, where: str, today: date) -> bool:
    """No ``period.end``, or one not before today (a partial date counts to its end)."""
    period = _get(item, "period", dict, where)
    end = _get(period, "end", str, f"{where}.period") if period else None
    if not end:
        return True
    day = end[:10]
    return day >= today.isoformat()[:len(day)]


def _pick(items: list[Resource], where: str, today: date, preferred: set[str],
          excluded: set[str], *, ranked: bool = False) -> Resource | None:
    """The first current item whose ``use`` is preferred, else the first current one whose
    ``use`` is not excluded, else the first item (an old value links better than none)."""
    uses = [_get(item, "use", str, where) for item in items]
    current = [item for item, use in zip(items, uses, strict=True)
               if use not in excluded and _current(item, where, today)]
    if ranked:  # ContactPoint.rank: 1 is the most preferred; unranked come after
        current.sort(key=lambda item: _get(item, "rank", int, where) or float("inf"))
    for item in current:
        if item.get("use") in preferred:
            return item
    if current:
        return current[0]
    return items[0] if items else None


def _mrn(resource: Resource) -> str:
    """The value of the first identifier typed MR (v2-0203 "Medical record number")."""
    for identifier in _objects(resource, "identifier", "Patient"):
        kind = _get(identifier, "type", dict, "Patient.identifier") or {}
        for coding in _objects(kind, "coding", "Patient.identifier.type"):
            code = _get(coding, "code", str, "Patient.identifier.type.coding")
            system = _get(coding, "system", str, "Patient.identifier.type.coding")
            if code == "MR" and system in (None, _MRN_SYSTEM):
                return _get(identifier, "value", str, "Patient.identifier") or ""
    return ""


def patient_columns(resource: object, today: date) -> dict[str, str]:
    """The raw value each column of :data:`FHIR_COLUMNS` takes from one Patient resource;
    "" where the Patient has none, as an empty CSV cell.

    Raises:
        MalformedResource: not a Patient, or an element used here of the wrong JSON type.
    """
    if not isinstance(resource, dict):
        raise MalformedResource("is not a JSON object")
    kind = resource.get("resourceType")
    if kind != "Patient":
        if kind is None:
            raise MalformedResource("has no resourceType")
        if isinstance(kind, str) and _RESOURCE_TYPE.fullmatch(kind):
            raise MalformedResource(f"has resourceType {kind}, not Patient")
        raise MalformedResource("has a resourceType that is not a FHIR resource type")
    name = _pick(_objects(resource, "name", "Patient"), "Patient.name", today, {"official"},
                 _NOT_CURRENT_NAMES) or {}
    address = _pick(_objects(resource, "address", "Patient"), "Patient.address", today,
                    {"home"}, {"old"}) or {}
    phones = [t for t in _objects(resource, "telecom", "Patient")
              if _get(t, "system", str, "Patient.telecom") == "phone"]
    phone = _pick(phones, "Patient.telecom", today, {"home", "mobile"}, {"old"},
                  ranked=True) or {}
    given = _strings(name, "given", "Patient.name")
    lines = _strings(address, "line", "Patient.address")
    return {
        "id": _get(resource, "id", str, "Patient") or "",
        "mrn": _mrn(resource),
        "given_name": given[0] if given else "",
        "surname": _get(name, "family", str, "Patient.name") or "",
        "date_of_birth": _get(resource, "birthDate", str, "Patient") or "",
        "sex": _get(resource, "gender", str, "Patient") or "",
        "address": lines[0] if lines else "",
        "city": _get(address, "city", str, "Patient.address") or "",
        "zip": _get(address, "postalCode", str, "Patient.address") or "",
        "phone": _get(phone, "value", str, "Patient.telecom") or "",
    }


def _parse(raw: bytes) -> object:
    """One JSON document; a UTF-8 byte order mark before it (Windows editors write one at the
    start of a file) is ignored, as RFC 8259 allows."""
    try:
        return json.loads(raw.removeprefix(b"\xef\xbb\xbf").decode("utf-8"))
    except UnicodeDecodeError as e:
        raise MalformedResource("is not UTF-8 text (FHIR JSON always is)") from e
    except json.JSONDecodeError as e:
        raise MalformedResource(f"is not JSON ({e.msg})") from e
    except RecursionError as e:
        raise MalformedResource("is JSON nested too deeply") from e


Read = dict[str, str] | MalformedResource


def _ndjson(path: Path, today: date) -> Iterator[tuple[int, Read]]:
    """One resource per line, read a line at a time; blank lines are skipped."""
    with path.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                yield number, patient_columns(_parse(line), today)
            except MalformedResource as e:
                yield number, e


def _bundle_entries(path: Path) -> list[object]:
    """The entries of a Bundle file, read whole.

    Raises:
        InputError: the file is not JSON, not a Bundle, or its ``entry`` is not a list.
    """
    try:
        bundle = _parse(path.read_bytes())
    except MalformedResource as e:
        raise InputError(f"{path}: {e.reason}; a .json input must be a FHIR Bundle") from e
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise InputError(f"{path}: a .json input must be a FHIR Bundle of Patient resources "
                         f"(bulk-export NDJSON files end in .ndjson)")
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise InputError(f"{path}: the Bundle's entry is not a list")
    return entries


def _bundle(entries: list[object], today: date) -> Iterator[tuple[int, Read]]:
    for number, entry in enumerate(entries, 1):
        try:
            if not isinstance(entry, dict):
                raise MalformedResource("is not a JSON object")
            if entry.get("resource") is None:
                raise MalformedResource("has no resource")
            yield number, patient_columns(entry["resource"], today)
        except MalformedResource as e:
            yield number, e


def read_patients(path: Path, today: date) -> tuple[int | None, Iterator[tuple[int, Read]]]:
    """The number of resources where known (a Bundle's entries), and each resource's line
    (NDJSON, 1-based) or entry number (Bundle, 1-based) with its columns or why not.

    Raises:
        InputError: a Bundle file that cannot be read as one.
    """
    if path.suffix.lower() in NDJSON_SUFFIXES:
        return None, _ndjson(path, today)
    entries = _bundle_entries(path)
    return len(entries), _bundle(entries, today)
