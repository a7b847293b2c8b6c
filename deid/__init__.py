"""DICOM de-identification (PS3.15 Annex E, from the standard's own table) that tokenizes
each patient before stripping identifiers, so imaging stays linkable to EHR and claims."""

from .errors import DeidError
from .identity import PatientIdentity, identity_of, person_columns
from .profile import Profile, ProfileOptions, load_profile
from .run import DeidReport, deidentify_folder
from .site_keys import SiteKeys
from .verify import VerifyResult, verify_folder

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
