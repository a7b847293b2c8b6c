"""DICOM de-identification (PS3.15 Annex E, from the standard's own table) that tokenizes
each patient before stripping identifiers, so imaging stays linkable to EHR and claims.

The names below are imported on first use: ``deid.risk`` and other sub-packages that need
neither pydicom nor the tokenizer should not pay for importing them.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "DeidError",
    "DeidReport",
    "PatientIdentity",
    "Profile",
    "ProfileOptions",
    "SiteKeys",
    "VerifyResult",
    "deidentify_folder",
    "identity_of",
    "load_profile",
    "person_columns",
    "verify_folder",
]
_MODULES = {"DeidError": ".errors", "PatientIdentity": ".identity", "identity_of": ".identity",
            "person_columns": ".identity", "Profile": ".profile",
            "ProfileOptions": ".profile", "load_profile": ".profile", "DeidReport": ".run",
            "deidentify_folder": ".run", "SiteKeys": ".site_keys",
            "VerifyResult": ".verify", "verify_folder": ".verify"}


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module 'deid' has no attribute {name!r}")
    return getattr(importlib.import_module(_MODULES[name], __name__), name)
