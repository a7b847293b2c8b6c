"""The Clean Pixel Data option: blank the regions where a device burns in text.

Which regions depend on the device and its screen layout, so they come from a rules file the
site writes (as RSNA CTP's pixel anonymizer scripts do), not from guessing: each rule names
attribute values an image must have (Modality, Manufacturer, ManufacturerModelName, Rows,
Columns, ...) and the rectangles to blank. Only native (uncompressed) pixel data is cleaned,
in place on its bytes; nothing is decoded or re-encoded.

    {"rules": [{"match": {"Modality": "US", "Manufacturer": "Philips Medical Systems"},
                "regions": [[0, 0, 1024, 60]]}]}

Regions are [x0, y0, x1, y1] in pixels, x1 and y1 exclusive, clipped to the image.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.datadict import keyword_dict
from pydicom.dataset import Dataset
from pydicom.uid import UID

from .errors import DeidError

__all__ = ["RegionRule", "PixelCleaningError", "load_region_rules", "matching_rule",
           "blank_regions", "describe_device"]

_DEVICE_KEYWORDS = ("Modality", "Manufacturer", "ManufacturerModelName", "Rows", "Columns")


class PixelCleaningError(Exception):
    """This image's pixel data cannot be cleaned (the reason is for the report)."""


@dataclass(frozen=True)
class RegionRule:
    match: tuple[tuple[str, str], ...]
    regions: tuple[tuple[int, int, int, int], ...]

    def matches(self, dataset: Dataset) -> bool:
        return all(_text(dataset.get(keyword)) == value.upper() for keyword, value in self.match)


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip().upper()


def _rule(path: Path, index: int, raw: Any) -> RegionRule:
    where = f"{path}: rules[{index}]"
    if not isinstance(raw, dict) or set(raw) != {"match", "regions"}:
        raise DeidError(f"{where} must be an object with exactly 'match' and 'regions'")
    match, regions = raw["match"], raw["regions"]
    if not isinstance(match, dict) or not match:
        raise DeidError(f"{where}.match must be a non-empty object of attribute keywords")
    for keyword, value in match.items():
        if keyword not in keyword_dict:
            raise DeidError(f"{where}.match: {keyword!r} is not a DICOM attribute keyword")
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise DeidError(f"{where}.match.{keyword} must be a string or an integer")
    if not isinstance(regions, list) or not regions:
        raise DeidError(f"{where}.regions must be a non-empty list of [x0, y0, x1, y1]")
    boxes = []
    for k, box in enumerate(regions):
        if (not isinstance(box, list) or len(box) != 4
                or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                           for v in box) or box[2] <= box[0] or box[3] <= box[1]):
            raise DeidError(f"{where}.regions[{k}] must be [x0, y0, x1, y1]: non-negative "
                            f"integers with x1 > x0 and y1 > y0")
        boxes.append((box[0], box[1], box[2], box[3]))
    return RegionRule(tuple((k, str(v).strip()) for k, v in sorted(match.items())),
                      tuple(boxes))


def load_region_rules(path: Path) -> list[RegionRule]:
    """Rules from a JSON file; a mistake is reported with the file, rule and field."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise DeidError(f"pixel region rules {path} do not exist") from e
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DeidError(f"pixel region rules {path} cannot be read as JSON: {e}") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("rules"), list):
        raise DeidError(f'{path}: expected {{"rules": [{{"match": ..., "regions": ...}}]}}')
    return [_rule(path, i, raw) for i, raw in enumerate(doc["rules"])]


def matching_rule(dataset: Dataset, rules: list[RegionRule]) -> RegionRule | None:
    """The first rule the image matches."""
    return next((rule for rule in rules if rule.matches(dataset)), None)


def describe_device(dataset: Dataset) -> str:
    """What a rule would match on, for the report of an image no rule matched."""
    return ", ".join(f"{k}={_text(dataset.get(k))}" for k in _DEVICE_KEYWORDS)


def _layout(dataset: Dataset) -> tuple[np.dtype[Any], tuple[int, ...], str]:
    """dtype, array shape and axes of native pixel data."""
    syntax = UID(str(dataset.file_meta.TransferSyntaxUID))
    if syntax.is_compressed:
        raise PixelCleaningError(f"pixel data is compressed ({syntax.name}); only native "
                                 f"pixel data is cleaned")
    if "PixelData" not in dataset:
        raise PixelCleaningError("only integer PixelData is cleaned")
    bits = int(dataset.BitsAllocated)
    if bits not in (8, 16, 32):
        raise PixelCleaningError(f"BitsAllocated {bits} is not cleaned")
    dtype = np.dtype(f"{'<' if syntax.is_little_endian else '>'}u{bits // 8}")
    frames = int(dataset.get("NumberOfFrames") or 1)
    rows, columns = int(dataset.Rows), int(dataset.Columns)
    samples = int(dataset.get("SamplesPerPixel") or 1)
    if samples == 1:
        return dtype, (frames, rows, columns), "fyx"
    if int(dataset.get("PlanarConfiguration") or 0) == 0:
        return dtype, (frames, rows, columns, samples), "fyxs"
    return dtype, (frames, samples, rows, columns), "fsyx"


def blank_regions(dataset: Dataset, regions: tuple[tuple[int, int, int, int], ...]) -> None:
    """Set every sample of every frame inside the regions to 0, and BurnedInAnnotation NO.

    Raises:
        PixelCleaningError: compressed, float or bit-packed pixel data, or too few bytes.
    """
    dtype, shape, axes = _layout(dataset)
    data = dataset.PixelData
    count = int(np.prod(shape))
    if len(data) < count * dtype.itemsize:
        raise PixelCleaningError(f"PixelData holds {len(data)} bytes, fewer than the "
                                 f"{count * dtype.itemsize} its attributes describe")
    pixels = np.frombuffer(data, dtype=dtype, count=count).reshape(shape).copy()
    for x0, y0, x1, y1 in regions:
        if axes == "fyxs":
            pixels[:, y0:y1, x0:x1, :] = 0
        else:
            pixels[..., y0:y1, x0:x1] = 0
    dataset.PixelData = pixels.tobytes() + data[count * dtype.itemsize:]
    dataset.BurnedInAnnotation = "NO"
