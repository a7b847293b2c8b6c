"""Encode a de-identified dataset as DICOM Part 10 bytes, fast.

pydicom's ``dcmwrite`` spends most of its time on per-element bookkeeping for elements that
de-identification leaves as they were read. Here those elements (still pydicom's raw
elements: never converted) are copied as header + original value bytes; the elements the
profile changed, and every sequence item, go through pydicom's own element writer. The
result is byte for byte what ``dcmwrite(..., enforce_file_format=True)`` writes for the same
dataset (tested on every DICOM file the tests use); deflated and big-endian transfer syntaxes,
rare in practice, are left to ``dcmwrite``.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable

import pydicom
from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import correct_ambiguous_vr, write_data_element
from pydicom.uid import UID
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32

__all__ = ["encode_part10"]

_PREFIX = b"\x00" * 128 + b"DICM"
_UNDEFINED = 0xFFFFFFFF
_TAG = struct.Struct("<HH")
_UL = struct.Struct("<L")
_US = struct.Struct("<H")
_ITEM = _TAG.pack(0xFFFE, 0xE000)
_ITEM_END = _TAG.pack(0xFFFE, 0xE00D) + b"\x00\x00\x00\x00"
_SEQUENCE_END = _TAG.pack(0xFFFE, 0xE0DD) + b"\x00\x00\x00\x00"
_LONG_VRS = frozenset(str(vr) for vr in EXPLICIT_VR_LENGTH_32)
# Text VRs whose str values pydicom writes as the characters padded to even length: ASCII
# only (never character-set encoded), and those encoded with the dataset's character set,
# which for ASCII text in the single-byte or UTF-8 sets below is again the characters.
_ASCII_VRS = frozenset({"AE", "AS", "CS", "DA", "DT", "TM", "UI"})
_CHARSET_VRS = frozenset({"SH", "LO", "ST", "LT", "UT", "UC"})
_ASCII_TRANSPARENT_SETS = frozenset({"", "ISO_IR 6", "ISO_IR 100", "ISO_IR 192",
                                     default_encoding, "latin_1", "UTF8"})


def _header(tag: int, vr: str | None, length: int, implicit: bool) -> bytes:
    """Tag, VR (explicit syntaxes) and length of one element, little endian."""
    head = _TAG.pack(tag >> 16, tag & 0xFFFF)
    if implicit:
        return head + _UL.pack(length)
    assert vr is not None, "explicit VR output needs each element's VR"
    if vr in _LONG_VRS or length == _UNDEFINED:
        return head + vr.encode("ascii") + b"\x00\x00" + _UL.pack(length)
    return head + vr.encode("ascii") + _US.pack(length)


def _write_raw(write: Callable[[bytes], object], element: RawDataElement,
               implicit: bool) -> None:
    value = element.value or b""
    undefined = element.length == _UNDEFINED
    write(_header(element.tag, element.VR, _UNDEFINED if undefined else len(value), implicit))
    write(value)
    if undefined:
        write(_SEQUENCE_END)


def _text_value(element: DataElement, ascii_charset: bool) -> bytes | None:
    """The encoded value of a plain ASCII text element, as pydicom would write it; None
    where pydicom's own writer must decide (numbers, names, lists, other characters)."""
    value = element.value
    vr = element.VR
    if not isinstance(value, str) or not value.isascii() or len(value) >= 0xFFFF:
        return None
    if vr not in _ASCII_VRS and not (ascii_charset and vr in _CHARSET_VRS):
        return None
    if len(value) % 2:
        value += "\0" if vr == "UI" else " "
    return value.encode("ascii")


def _write_sequence(fp: DicomBytesIO, element: DataElement, encodings: list[str],
                    implicit: bool) -> None:
    content = DicomBytesIO()
    content.is_little_endian = True
    content.is_implicit_VR = implicit
    for item in element.value:
        body = DicomBytesIO()
        body.is_little_endian = True
        body.is_implicit_VR = implicit
        _write_dataset(body, item, encodings, implicit)
        encoded = body.getvalue()
        if getattr(item, "is_undefined_length_sequence_item", False):
            content.write(_ITEM + _UL.pack(_UNDEFINED) + encoded + _ITEM_END)
        else:
            content.write(_ITEM + _UL.pack(len(encoded)) + encoded)
    encoded = content.getvalue()
    undefined = element.is_undefined_length
    fp.write(_header(element.tag, "SQ", _UNDEFINED if undefined else len(encoded), implicit))
    fp.write(encoded)
    if undefined:
        fp.write(_SEQUENCE_END)


def _write_dataset(fp: DicomBytesIO, dataset: Dataset, parent_encoding: str | list[str],
                   implicit: bool) -> None:
    """As pydicom's ``write_dataset``: a dataset read in another encoding, or whose
    character set changed, has every element converted; otherwise raw elements stay raw."""
    # pydicom keeps the character set in effect in a private attribute; its writer compares
    # the two the same way.
    convert = (dataset.original_encoding != (implicit, True)
               or dataset.original_character_set != dataset._character_set)
    if convert:
        dataset = correct_ambiguous_vr(dataset, True)
    encodings = dataset.get("SpecificCharacterSet", parent_encoding)
    named = [encodings] if encodings is None or isinstance(encodings, str) else list(encodings)
    ascii_charset = len(named) == 1 and (named[0] or "") in _ASCII_TRANSPARENT_SETS
    for tag in sorted(dataset.keys()):
        if tag & 0xFFFF == 0 and tag >> 16 > 6:  # retired group lengths are not written
            continue
        element = dataset[tag] if convert else dataset.get_item(tag)
        if isinstance(element, RawDataElement):
            if element.is_implicit_VR == implicit and element.is_little_endian:
                _write_raw(fp.write, element, implicit)
                continue
            # read in another encoding than the file announced: convert, as pydicom must
            element = dataset[tag]
        if element.VR == "SQ":
            _write_sequence(fp, element, convert_encodings(encodings or [default_encoding]),
                            implicit)
            continue
        text = _text_value(element, ascii_charset)
        if text is None:
            write_data_element(fp, element, encodings)
        else:
            fp.write(_header(tag, element.VR, len(text), implicit) + text)


def _file_meta(meta: FileMetaDataset) -> bytes:
    """The file meta group as ``dcmwrite`` writes it: its elements with the group length
    and the file meta information version added."""
    elements = []
    for element in meta:
        if element.tag in (0x00020000, 0x00020001):
            continue
        value = str(element.value).encode("ascii")
        if len(value) % 2:
            value += b"\x00" if element.VR == "UI" else b" "
        elements.append((int(element.tag), element.VR, value))
    elements.append((0x00020001, "OB", b"\x00\x01"))
    body = b"".join(_header(tag, vr, len(value), False) + value
                    for tag, vr, value in sorted(elements))
    return _header(0x00020000, "UL", 4, False) + _UL.pack(len(body)) + body


def encode_part10(dataset: Dataset, meta: FileMetaDataset) -> bytes:
    """The file: zero preamble, ``meta`` (text values only), then ``dataset`` in the transfer
    syntax ``meta`` names."""
    syntax = UID(meta.TransferSyntaxUID)
    if syntax.is_deflated or not syntax.is_little_endian:
        dataset.file_meta = meta
        dataset.preamble = b"\x00" * 128
        buffer = io.BytesIO()
        pydicom.dcmwrite(buffer, dataset, enforce_file_format=True)
        return buffer.getvalue()
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = syntax.is_implicit_VR
    fp.write(_PREFIX)
    fp.write(_file_meta(meta))
    _write_dataset(fp, dataset, default_encoding, syntax.is_implicit_VR)
    return fp.getvalue()
