"""Reading DICOM Part 10 files defensively and writing de-identified ones atomically.

Pixel data is read as bytes and written back unchanged; it is never decoded. A file whose
pixel data is shorter than its header promises is refused as truncated.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import pydicom
from pydicom import config
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import generate_fragments
from pydicom.pixels.utils import get_expected_length
from pydicom.tag import Tag
from pydicom.uid import UID

from .errors import UnreadableFileError
from .part10_reader import read_part10_bytes

__all__ = ["uid_path_names", "instance_path", "is_part10", "lenient_values", "read_dataset",
           "write_atomic", "IMPLEMENTATION_CLASS_UID"]

# Our own implementation UID, in the 2.25 form, from a fixed name (not from any key).
IMPLEMENTATION_CLASS_UID = "2.25." + str(
    int.from_bytes(hashlib.sha256(b"pprl-imaging deid").digest()[:16], "big"))
_IMPLEMENTATION_VERSION = "PPRL_DEID_1"
_IN_MEMORY_BYTES = 64 << 20


def is_part10(handle: BinaryIO) -> bool:
    """A Part 10 file: 128-byte preamble, then ``DICM``. ``handle`` is left at its start."""
    head = handle.read(132)
    handle.seek(0)
    return len(head) == 132 and head[128:] == b"DICM"


def _check_pixels(path: Path, dataset: Dataset) -> None:
    has_image = "Rows" in dataset and "Columns" in dataset
    pixel_keyword = next((k for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
                          if k in dataset), None)
    if pixel_keyword is None:
        if has_image and "BitsAllocated" in dataset:
            raise UnreadableFileError(f"{path}: the header describes an image but PixelData is "
                                      "missing (truncated file?)")
        return
    data = dataset[pixel_keyword].value
    syntax = dataset.file_meta.get("TransferSyntaxUID")
    if syntax is not None and UID(syntax).is_compressed:
        try:
            for _ in generate_fragments(data):
                pass
        except (ValueError, EOFError) as e:
            raise UnreadableFileError(f"{path}: encapsulated PixelData is damaged "
                                      f"({type(e).__name__})") from e
        return
    if pixel_keyword == "PixelData" and has_image:
        try:
            expected = int(get_expected_length(dataset, "bytes"))
        except (AttributeError, KeyError, ValueError, TypeError):
            return
        if len(data) < expected:
            raise UnreadableFileError(f"{path}: PixelData is truncated ({len(data)} of "
                                      f"{expected} bytes)")


@contextmanager
def lenient_values() -> Iterator[None]:
    """Sites' files break value rules (a 122-character LO): such values are read, and
    de-identified or kept like any other, without a warning per element."""
    mode = config.settings.reading_validation_mode
    config.settings.reading_validation_mode = config.IGNORE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        config.settings.reading_validation_mode = mode


def read_dataset(handle: BinaryIO, path: Path) -> Dataset:
    """Read a whole Part 10 file from ``handle``, pixel data as raw bytes.

    A file of up to 64 MiB is read into memory and, in the common encodings, parsed by
    ``part10_reader``; others go to ``dcmread`` (from memory: pydicom asks a file for its
    position at every element, a system call each).

    Raises:
        UnreadableFileError: corrupt or truncated, naming the file and what is wrong.
    """
    try:
        # Values are converted lazily, only where the profile acts on them; elements kept as
        # they are are written back from their raw bytes. A value that fails to convert
        # later quarantines the file then (see FileProcessor).
        if os.fstat(handle.fileno()).st_size > _IN_MEMORY_BYTES:
            dataset = pydicom.dcmread(handle)
        else:
            data = handle.read()
            dataset = read_part10_bytes(data, str(path)) or pydicom.dcmread(io.BytesIO(data))
    except Exception as e:  # pydicom raises many types on damaged input
        raise UnreadableFileError(f"{path}: not readable as DICOM ({type(e).__name__})") from e
    for keyword in ("SOPClassUID", "SOPInstanceUID"):
        if not str(dataset.get(keyword) or "").strip():
            raise UnreadableFileError(f"{path}: {keyword} is missing or empty")
    _check_pixels(path, dataset)
    return dataset


def new_file_meta(dataset: Dataset, transfer_syntax: str) -> FileMetaDataset:
    """Fresh file meta information: nothing of the original's (its source AE title,
    implementation or private information) survives."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    meta.TransferSyntaxUID = UID(transfer_syntax)
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = _IMPLEMENTATION_VERSION
    return meta


def write_atomic(data: bytes, target: Path) -> None:
    """Write under a temporary name, then rename, so an interrupted run never leaves a
    half-written file at ``target``; its folder is made when the first write finds none."""
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        try:
            temp.write_bytes(data)
        except FileNotFoundError:
            target.parent.mkdir(parents=True, exist_ok=True)
            temp.write_bytes(data)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


_UID = re.compile(r"[0-9]+(?:\.[0-9]+)*")
_MAX_UID_LENGTH = 64
_UID_PATH_KEYWORDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")


def uid_path_names(dataset: Dataset, relative: str) -> tuple[str, str, str]:
    """The study, series and SOP instance UIDs that name an output file; "" where absent or
    blank. Under --retain-uids (or in a folder changed by hand) they may be anything
    (``../..``): only a valid UID (digits and dots, at most 64 characters) may name a folder
    or file, so nothing is written outside the output folder.

    Raises:
        UnreadableFileError: one is not a valid UID (naming the file and the element).
    """
    names = []
    for keyword in _UID_PATH_KEYWORDS:
        value = dataset.get(keyword)
        text = "" if value is None else str(value).strip()
        if text and (len(text) > _MAX_UID_LENGTH or not _UID.fullmatch(text)):
            raise UnreadableFileError(
                f"{relative}: {keyword} {Tag(keyword)} is not a valid UID (digits and dots, "
                f"at most {_MAX_UID_LENGTH} characters), so it cannot name the output file")
        names.append(text)
    return names[0], names[1], names[2]


def instance_path(pseudonym: str, study: str, series: str, sop: str) -> str:
    """An instance's place in an output folder: PSEUDONYM/STUDY/SERIES/SOP.dcm, a missing study
    or series UID as no-study or no-series."""
    return f"{pseudonym}/{study or 'no-study'}/{series or 'no-series'}/{sop}.dcm"
