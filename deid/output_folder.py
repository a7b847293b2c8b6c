"""OUT_DIR of ``pprl deid``: what produced it, whether it is complete, and rebuilding it whole.

A de-identified export must be exactly what its settings say. OUT_DIR therefore records the
settings that made it (``deid-settings.json``: profile options, schema fingerprint, the
normalisation of the Patient module's identifiers, and key check values of the site key and
the linkage secret, never a key); a later run with other settings is refused, naming what
differs, unless it is asked to ``replace`` the folder, which is then rebuilt beside it and
swapped in whole. While a run works, OUT_DIR holds an
``INCOMPLETE`` marker, removed last: readers refuse the files of a marked folder, and a re-run
resumes it. At the end every file that is not an output of this run is removed, so the tree
and the manifest always agree.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tokenizer.encodings_file import INCOMPLETE_MARKER, AtomicFile

from .errors import DeidError

__all__ = ["DeidSettings", "OutputFolder", "SETTINGS_NAME", "check_folders"]

SETTINGS_NAME = "deid-settings.json"
SETTINGS_FORMAT = "pprl-deid-settings/1"
# Files of OUT_DIR that are not de-identified instances.
_OWN_FILES = {SETTINGS_NAME, INCOMPLETE_MARKER, "manifest.parquet", "encodings.parquet",
              "attributes.parquet"}
_LABELS = {"schema_fingerprint": "schema", "linkage_key_check": "linkage secret",
           "site_key_check": "site key", "allow_burned_in": "--allow-burned-in",
           "pixel_rules_sha256": "--clean-pixel-data rules", "provider": "--provider",
           "normalization": "normalisation (--normalize/--no-normalize)"}
# Settings recorded as fingerprints: a difference is named, the values are not shown.
_OPAQUE = {"schema_fingerprint", "linkage_key_check", "site_key_check", "pixel_rules_sha256"}


@dataclass(frozen=True)
class DeidSettings:
    """Everything that decides the bytes of a de-identified export (no secret in it)."""

    options: dict[str, Any]
    schema_fingerprint: str
    linkage_key_check: str
    site_key_check: str
    allow_burned_in: bool
    pixel_rules_sha256: str | None
    provider: str
    normalization: dict[str, str]
    """Feature -> normalisation kind: it decides the CLKs as much as the schema does."""

    def as_json(self) -> str:
        return json.dumps({"format": SETTINGS_FORMAT, **asdict(self)}, indent=2,
                          sort_keys=True) + "\n"

    @classmethod
    def from_file(cls, path: Path) -> DeidSettings | None:
        """The settings recorded in ``path``; None if it is not a settings file we can read."""
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if doc.pop("format") != SETTINGS_FORMAT:
                return None
            return cls(**doc)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def differences(self, other: DeidSettings) -> list[str]:
        """What differs, in words naming the option or key (never a key's value)."""
        found = [f"{name} ({other.options.get(name)!r} then, {value!r} now)"
                 for name, value in self.options.items() if other.options.get(name) != value]
        for name, label in _LABELS.items():
            then, now = getattr(other, name), getattr(self, name)
            if then != now:
                found.append(f"the {label}" if name in _OPAQUE
                             else f"{label} ({then!r} then, {now!r} now)")
        return found


def _within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def check_folders(in_dir: Path, out_dir: Path) -> None:
    """Refuse an OUT_DIR equal to, inside or containing IN_DIR (a run would read its own
    outputs, or write identifiers' neighbours into the export).

    Raises:
        DeidError: naming both folders and the relation.
    """
    if not in_dir.is_dir():
        raise DeidError(f"input folder {in_dir} does not exist or is not a folder")
    source, target = in_dir.resolve(), out_dir.resolve()
    if source == target:
        raise DeidError(f"OUT_DIR {out_dir} is IN_DIR itself: give a separate, new folder")
    if _within(target, source):
        raise DeidError(f"OUT_DIR {out_dir} is inside IN_DIR {in_dir}: the export would be "
                        f"read as input; give a folder outside it")
    if _within(source, target):
        raise DeidError(f"OUT_DIR {out_dir} contains IN_DIR {in_dir}: the export would hold "
                        f"the originals; give a folder outside it")


class OutputFolder:
    """Where a run writes (OUT_DIR itself, or a sibling that replaces it), and its record."""

    def __init__(self, out_dir: Path, settings: DeidSettings, *, replace: bool) -> None:
        self.final = out_dir
        self.settings = settings
        self.replacing = replace
        self.work = out_dir.with_name(f".{out_dir.name}.replacing") if replace else out_dir
        self._old = out_dir.with_name(f".{out_dir.name}.replaced")

    def prepare(self) -> None:
        """Check OUT_DIR against the settings, then mark the working folder incomplete.

        Raises:
            DeidError: OUT_DIR was made with other settings (and ``replace`` is not set), or
                is a non-empty folder that ``pprl deid`` did not make.
        """
        shutil.rmtree(self._old, ignore_errors=True)  # left by a swap that was interrupted
        recorded = self._recorded(self.final)
        if self.final.exists() and any(self.final.iterdir()):
            if recorded is None and not (self.final / "manifest.parquet").exists():
                raise DeidError(f"OUT_DIR {self.final} is not empty and was not made by "
                                f"`pprl deid`: give an empty or new folder")
            if not self.replacing:
                if recorded is None:
                    raise DeidError(
                        f"OUT_DIR {self.final} records no settings (made by an older version): "
                        f"give --replace to rebuild it, or a new folder")
                differences = self.settings.differences(recorded)
                if differences:
                    raise DeidError(
                        f"OUT_DIR {self.final} was made with other settings: "
                        f"{'; '.join(differences)}. Its files would mix both: give --replace "
                        f"to rebuild it whole, or a new folder")
        if self.replacing and self._recorded(self.work) != self.settings:
            shutil.rmtree(self.work, ignore_errors=True)  # an interrupted rebuild, other settings
        self.work.mkdir(parents=True, exist_ok=True)
        (self.work / INCOMPLETE_MARKER).write_text(
            "A `pprl deid` run writing this folder has not finished: its files are not to be "
            "used. Run the same command again to complete it.\n", encoding="utf-8")
        settings_file = AtomicFile(self.work / SETTINGS_NAME)
        settings_file.temp.write_text(self.settings.as_json(), encoding="utf-8")
        settings_file.commit()

    @staticmethod
    def _recorded(folder: Path) -> DeidSettings | None:
        return DeidSettings.from_file(folder / SETTINGS_NAME)

    def prune(self, outputs: Iterable[str]) -> int:
        """Remove every instance file of the working folder that is not one of ``outputs``
        (relative paths), and folders left empty; returns how many files went."""
        keep = set(outputs)
        removed = 0
        for root, folders, files in os.walk(self.work, topdown=False):
            here = Path(root)
            for name in files:
                relative = (here / name).relative_to(self.work).as_posix()
                if relative not in keep and not (here == self.work and name in _OWN_FILES):
                    (here / name).unlink()
                    removed += 1
            for name in folders:
                with suppress(OSError):  # not empty
                    (here / name).rmdir()
        return removed

    def finish(self) -> None:
        """Remove the marker (the folder is complete) and, when replacing, swap it in."""
        (self.work / INCOMPLETE_MARKER).unlink()
        if not self.replacing:
            return
        if self.final.exists():
            os.replace(self.final, self._old)
        os.replace(self.work, self.final)
        shutil.rmtree(self._old, ignore_errors=True)
