"""Apply the profile to a dataset, in place, recursing into every sequence item.

Public elements follow their Table E.1-1 rule (elements the table does not list are kept, and
their sequences are still walked); private elements follow the table's private row (removed,
or under Retain Safe Private looked up in TCIA's knowledge base by their path).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydicom.charset import default_encoding
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

from .dates import shift_value
from .private_tags import PathStep, load_private_dispositions, private_step, public_step
from .profile import Profile, ProfileOptions, load_profile
from .scrub import Scrubber
from .site_keys import SiteKeys

__all__ = ["DUMMY_DATE", "PatientContext", "Transformer"]

_TEXT_VRS = {"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT", "UR"}
_BINARY_NUMBER_VRS = {"US", "SS", "UL", "SL", "FL", "FD", "SV", "UV", "AT"}
_BITMAP_VRS = {"OB", "OW", "OF", "OD", "OL", "OV"}
DUMMY_DATE = "19000101"  # D's dummy date; also a common placeholder for an unknown one
_DUMMY_TEXT = {"DA": DUMMY_DATE, "DT": "19000101000000", "TM": "000000", "AS": "000D",
               "DS": "0", "IS": "0"}
_DUMMY = "ANONYMIZED"
_HASHABLE_VRS = (_TEXT_VRS - {"PN"}) | {"UI"}


@dataclass(frozen=True)
class PatientContext:
    """What the transform needs to know about the file's patient."""

    pseudonym: str
    day_offset: int
    scrubber: Scrubber


def _map_values(element: DataElement, change: Callable[[str], str]) -> None:
    value = element.value
    if isinstance(value, (MultiValue, list)):
        element.value = [change(str(v)) for v in value]
    elif value is not None and value != "":
        element.value = change(str(value))


def _padded(text: str, pad: str) -> bytes:
    """Text as pydicom writes it: padded to an even length."""
    return (text + pad if len(text) % 2 else text).encode(default_encoding)


def _mapped_bytes(value: bytes | None, change: Callable[[str], str], pad: str) -> bytes:
    """``change`` applied to each value of a raw string element, as ``_map_values`` does to
    the value pydicom decodes from it (padding stripped, split at backslashes; a single
    empty value stays empty)."""
    values = (value or b"").decode(default_encoding).rstrip(" \0").split("\\")
    if values == [""]:
        return b""
    return _padded("\\".join(change(v) for v in values), pad)


def _dictionary_vr(tag: int) -> str | None:
    """The data dictionary's VR for an element read with implicit VR; None if the tag is
    unknown or its VR ambiguous (US or SS, ...)."""
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        return None
    return vr if len(vr) == 2 else None


def _read_un_sequence_as_sq(dataset: Dataset, tag: BaseTag) -> None:
    """A known sequence sent with VR UN (by a node that did not know it) would be kept whole,
    identifiers and UIDs in its items included: mark it SQ so that it is converted and walked
    like any sequence. PS3.5 6.2.2: its value is items in Implicit VR Little Endian (pydicom's
    own conversion is skipped for values of 64 KiB or more)."""
    raw = dataset.get_item(tag)
    if (isinstance(raw, RawDataElement) and raw.VR == "UN"
            and _dictionary_vr(tag) == "SQ" and raw.length != 0xFFFFFFFF):
        dataset[tag] = RawDataElement(raw.tag, "SQ", raw.length, raw.value, raw.value_tell,
                                      True, True)


def _is_sequence(dataset: Dataset, tag: BaseTag) -> bool:
    """Whether an element is a sequence, without converting its value."""
    vr = dataset.get_item(tag).VR
    if vr is None:  # implicit VR: the data dictionary says (unknown tags are read as UN)
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            return False
    return vr == "SQ"


class Transformer:
    """De-identifies datasets with one set of options and one site key."""

    def __init__(self, options: ProfileOptions, keys: SiteKeys,
                 profile: Profile | None = None) -> None:
        self.options = options
        self.keys = keys
        self.profile = profile or load_profile()
        self.private_action = self.profile.private.action(options)
        self.dispositions = load_private_dispositions() if self.private_action != "X" else {}
        self._actions = {tag: rule.action(options) for tag, rule in self.profile.exact.items()}

    def apply(self, dataset: Dataset, patient: PatientContext) -> None:
        self._walk(dataset, patient, ())

    def _action_for(self, tag: int) -> str | None:
        action = self._actions.get(tag)
        if action is None and tag not in self._actions:
            rule = self.profile.rule_for(tag)
            action = rule.action(self.options) if rule is not None else None
        return action

    def _walk(self, dataset: Dataset, patient: PatientContext, path: tuple[PathStep, ...],
              cleaning: bool = False) -> None:
        """Each element by its row of the profile; ``cleaning``: inside a sequence whose
        action is C, where an element without a row of its own (an SR TextValue, an
        annotation's UnformattedTextValue) is cleaned, not kept as it is."""
        remove_private = self.private_action == "X"
        private_kept = False
        for tag in list(dataset.keys()):
            if tag >> 16 & 1:  # odd group: private
                if remove_private:  # creators too: no private element is left to need one
                    del dataset[tag]
                elif not 0x10 <= tag & 0xFFFF < 0x100:  # not a private creator
                    private_kept |= self._private(dataset, tag, patient, path)
                continue
            _read_un_sequence_as_sq(dataset, tag)
            action = self._action_for(tag)
            if action is None and cleaning:
                action = "C"
            if action is None or action == "K":
                # Kept as read: convert (and walk) sequences only, so other kept values are
                # written back from their raw bytes.
                if _is_sequence(dataset, tag):
                    self._items(dataset[tag], patient, path + (public_step(tag),))
                continue
            if action == "X":  # removed: no need to convert its value first
                del dataset[tag]
                continue
            element = dataset.get_item(tag)
            if not (isinstance(element, RawDataElement)
                    and self._act_on_bytes(dataset, element, action, patient)):
                self._act(dataset, dataset[tag], action, patient, path)
        if not remove_private:
            self._drop_unused_creators(dataset, private_kept)

    def _items(self, element: DataElement, patient: PatientContext,
               path: tuple[PathStep, ...], cleaning: bool = False) -> None:
        for item in element.value or []:
            self._walk(item, patient, path, cleaning)

    def _act(self, dataset: Dataset, element: DataElement, action: str,
             patient: PatientContext, path: tuple[PathStep, ...]) -> None:
        vr = element.VR
        if action == "X" or (vr == "UN" and action != "Z"):
            # An element of unknown VR cannot be shifted, remapped or cleaned: remove it.
            del dataset[element.tag]
        elif action == "Z":
            element.value = Sequence([]) if vr == "SQ" else None
        elif vr == "SQ" and action == "D":
            # A dummy: one empty item. Walking the items kept what has no row of its own
            # (an SR report's text, an annotation's text) as it was.
            element.value = Sequence([Dataset()])
        elif vr == "SQ":
            self._items(element, patient, path + (public_step(int(element.tag)),),
                        cleaning=action == "C")
        elif vr == "UI" and action in ("U", "U*", "D", "C"):
            _map_values(element, self.keys.uid)
        elif action == "D":
            element.value = self._dummy(vr)
        elif action == "C" and vr in _BITMAP_VRS and int(element.tag) >> 24 == 0x60:
            # Overlay Data under Clean Graphics: no text to clean in a bitmap, which may show
            # rendered text: removed. (Other C on bytes, timestamps, stay as they are.)
            del dataset[element.tag]
        elif action == "C":
            self._clean(element, patient)

    def _act_on_bytes(self, dataset: Dataset, raw: RawDataElement, action: str,
                      patient: PatientContext) -> bool:
        """The common actions on a little-endian element as read (empty it, remap its
        UIDs, shift its dates, replace it with a dummy text), done on its bytes: the
        result is what ``_act`` and pydicom's writer would make of it, without converting
        the value twice. False: ``_act`` must do it."""
        if (raw.is_implicit_VR, raw.is_little_endian) != (dataset.original_encoding[0], True):
            return False  # big endian, or read otherwise than the file announced
        vr = raw.VR or _dictionary_vr(raw.tag)
        if vr in (None, "SQ", "UN"):  # pydicom converts UN to the dictionary's VR
            return False
        if action == "Z":
            value = b""
        elif vr == "UI" and action in ("U", "U*", "D", "C"):
            value = _mapped_bytes(raw.value, self.keys.uid, "\0")
        elif vr in ("DA", "DT") and action == "C":
            value = _mapped_bytes(raw.value, lambda v: shift_value(vr, v, patient.day_offset),
                                  " ")
        elif action == "D" and vr in _DUMMY_TEXT:
            value = _padded(_DUMMY_TEXT[vr], " ")
        elif action == "D" and vr in _TEXT_VRS:
            value = _padded(_DUMMY, " ")
        else:
            return False
        dataset[raw.tag] = RawDataElement(raw.tag, raw.VR, len(value), value, raw.value_tell,
                                          raw.is_implicit_VR, True)
        return True

    def _dummy(self, vr: str) -> Any:
        if vr in _DUMMY_TEXT:
            return _DUMMY_TEXT[vr]
        if vr in _TEXT_VRS:
            return _DUMMY
        if vr in _BINARY_NUMBER_VRS:
            return 0
        return b"\x00\x00"

    def _clean(self, element: DataElement, patient: PatientContext) -> None:
        vr = element.VR
        if vr in ("DA", "DT"):
            _map_values(element, lambda v: shift_value(vr, v, patient.day_offset))
        elif vr in _TEXT_VRS:
            _map_values(element, patient.scrubber.clean)

    def _private(self, dataset: Dataset, tag: BaseTag, patient: PatientContext,
                 path: tuple[PathStep, ...]) -> bool:
        """Handle one private element under Retain Safe Private; True if it stays."""
        creator_tag = (tag & 0xFFFF0000) | ((tag & 0xFF00) >> 8)
        creator = dataset.get(creator_tag)
        step = private_step(tag, str(creator.value) if creator is not None else "")
        disposition = (self.dispositions.get(path + (step,), "d") if creator is not None
                       else "d")
        element = dataset[tag]
        vr = element.VR
        if disposition == "k":
            if vr == "SQ":
                self._items(element, patient, path + (step,))
            return True
        if disposition == "h" and vr in _HASHABLE_VRS:
            _map_values(element, (self.keys.uid if vr == "UI" else
                                  lambda v: self.keys.hashed_value(v, 16)))
            return True
        if disposition == "o" and vr in ("DA", "DT", "TM") and self.options.dates != "remove":
            # as the public dates: shifted, or kept with --dates full (a shifted copy beside
            # the true date gave the patient's day offset away); removed with --dates remove
            if self.options.dates == "modified":
                _map_values(element, lambda v: shift_value(vr, v, patient.day_offset))
            return True
        del dataset[tag]
        return False

    @staticmethod
    def _drop_unused_creators(dataset: Dataset, private_kept: bool) -> None:
        # Iterating a Dataset yields elements, not tags: keys() is meant.
        creators = [t for t in dataset.keys() if t.is_private_creator]  # noqa: SIM118
        if not creators:
            return
        used = ({(int(t) >> 16, (int(t) >> 8) & 0xFF) for t in dataset.keys()  # noqa: SIM118
                 if t.is_private and not t.is_private_creator} if private_kept else set())
        for tag in creators:
            if (tag.group, tag.element) not in used:
                del dataset[tag]
