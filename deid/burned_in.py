"""Which images may carry identifiers burned into their pixels.

Such an image is withheld, the reason going into the run's report, unless a Clean Pixel
Data rule covers it (``pixels.py``) or the user opts in with ``--allow-burned-in``.
"""

from __future__ import annotations

from pydicom import uid
from pydicom.dataset import Dataset

__all__ = ["burned_in_reason"]

# Classes whose images are screen grabs or scanner displays, which routinely show the
# patient's name, id and dates.
_TEXT_PRONE_CLASSES = {
    uid.SecondaryCaptureImageStorage,
    uid.MultiFrameSingleBitSecondaryCaptureImageStorage,
    uid.MultiFrameGrayscaleByteSecondaryCaptureImageStorage,
    uid.MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
    uid.MultiFrameTrueColorSecondaryCaptureImageStorage,
    uid.UltrasoundImageStorage,
    uid.UltrasoundMultiFrameImageStorage,
}
_TEXT_PRONE_MODALITIES = {"US"}


def burned_in_reason(dataset: Dataset) -> str | None:
    """Why this image may show identifiers in its pixels, or None."""
    if not any(k in dataset for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        return None
    if str(dataset.get("BurnedInAnnotation", "")).strip().upper() == "YES":
        return "BurnedInAnnotation is YES"
    sop_class = str(dataset.get("SOPClassUID", ""))
    if sop_class in _TEXT_PRONE_CLASSES:
        return f"SOP class {uid.UID(sop_class).name} often carries burned-in text"
    modality = str(dataset.get("Modality", "")).strip().upper()
    if modality in _TEXT_PRONE_MODALITIES:
        return f"modality {modality} often carries burned-in text"
    return None
