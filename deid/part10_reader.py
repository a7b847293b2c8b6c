"""Read a DICOM Part 10 file's bytes into a pydicom dataset, fast, for the common case.

pydicom's reader spends most of its time on per-element generality (deferred reads,
callbacks, encodings switched mid-file). Most files an imaging site exports are little
endian, implicit or explicit VR, with every top-level element of defined length; for those
this module builds the very raw elements pydicom would (same tags, VRs, lengths, values and
offsets; tested element for element against ``dcmread``) with one ``struct`` call each.
Anything else (big endian, deflate, command elements, undefined lengths, unknown VRs, an
encoding that differs from the one the file announces, a short last value) returns None,
and the caller reads the file with ``dcmread``.
"""

from __future__ import annotations

import struct
from typing import cast

from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import (
    DataElement,
    RawDataElement,
    convert_raw_data_element,
    empty_value_for_VR,
)
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.tag import BaseTag
from pydicom.uid import UID, ImplicitVRLittleEndian
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32, VR

__all__ = ["read_part10_bytes"]

_EXPLICIT = struct.Struct("<HH2sH")
_IMPLICIT = struct.Struct("<HHL")
_LENGTH_32 = struct.Struct("<L")
_VRS = {str(vr).encode("ascii"): str(vr) for vr in VR if len(str(vr)) == 2}
_LONG_VRS = frozenset(str(vr) for vr in EXPLICIT_VR_LENGTH_32)
_UNDEFINED = 0xFFFFFFFF
_CHARSET = 0x00080005
_RawElements = dict[BaseTag, RawDataElement | DataElement]


def _elements(data: bytes, pos: int, implicit: bool, meta: bool
              ) -> tuple[_RawElements, int] | None:
    """Raw elements from ``pos`` to the end (``meta``: to the end of group 2), and where
    they stop; None where pydicom's reader must decide."""
    elements: _RawElements = {}
    end = len(data)
    while pos + 8 <= end:
        if implicit:
            group, number, length = _IMPLICIT.unpack_from(data, pos)
            vr = None
            pos += 8
        else:
            group, number, vr_bytes, length = _EXPLICIT.unpack_from(data, pos)
            if meta and group != 2:
                break
            vr = _VRS.get(vr_bytes)
            if vr is None:
                return None
            pos += 8
            if vr in _LONG_VRS:
                if pos + 4 > end:
                    return None
                length = _LENGTH_32.unpack_from(data, pos)[0]
                pos += 4
        if length == _UNDEFINED or group in (0x0000, 0xFFFE) or pos + length > end:
            return None
        tag = BaseTag(group << 16 | number)
        value = (data[pos:pos + length] if length
                 else cast(bytes | None, empty_value_for_VR(vr, raw=True)))
        elements[tag] = RawDataElement(tag, vr, length, value, pos, implicit, True)
        pos += length
    return elements, pos


def _looks_implicit(data: bytes, pos: int) -> bool:
    """pydicom's test of the first element: a VR is two upper-case letters."""
    vr = data[pos + 4:pos + 6]
    return not (len(vr) == 2 and 0x40 < vr[0] < 0x5B and 0x40 < vr[1] < 0x5B)


def read_part10_bytes(data: bytes, name: str) -> FileDataset | None:
    """The dataset ``dcmread`` would return for ``data``, or None where it must read it."""
    if data[128:132] != b"DICM":
        return None
    parsed = _elements(data, 132, implicit=False, meta=True)
    if parsed is None:
        return None
    meta_elements, pos = parsed
    syntax_element = meta_elements.get(BaseTag(0x00020010))
    if syntax_element is None or pos >= len(data):
        return None
    syntax = UID(str(convert_raw_data_element(cast(RawDataElement, syntax_element)).value))
    if syntax == ImplicitVRLittleEndian:
        implicit = True
    elif syntax.is_transfer_syntax and syntax.is_little_endian and not syntax.is_deflated:
        implicit = False
    else:
        return None
    if _looks_implicit(data, pos) != implicit:
        return None
    parsed = _elements(data, pos, implicit, meta=False)
    if parsed is None or parsed[1] != len(data):
        return None
    elements = parsed[0]
    charset: str | list[str] = default_encoding
    if _CHARSET in elements:
        raw_charset = cast(RawDataElement, elements[BaseTag(_CHARSET)])
        charset = convert_encodings(convert_raw_data_element(raw_charset).value)
    body = Dataset(elements)
    body.set_original_encoding(implicit, True, charset)
    dataset = FileDataset(name, body, data[:128], FileMetaDataset(meta_elements), implicit,
                          True)
    # As dcmread: this converts the SpecificCharacterSet element in place.
    dataset.set_original_encoding(implicit, True, body._character_set)
    return dataset
