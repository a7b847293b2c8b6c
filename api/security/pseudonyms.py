"""Entity pseudonyms: keyed per project with the service key, so the same person gets
different ids in different projects and two projects' results cannot be joined without the
data manager."""

from __future__ import annotations

import base64
import hashlib
import hmac

__all__ = ["entity_pseudonym"]


def entity_pseudonym(service_key: bytes, project_id: str, party: str, record_id: str) -> str:
    """Pseudonym of the entity whose canonical (smallest) member is (party, record_id).

    Derived from the entity's members, not from the run's numbering, so a re-run that finds
    the same entity gives it the same pseudonym.
    """
    message = b"\0".join([b"pprl entity v1", project_id.encode(), party.encode(),
                          record_id.encode()])
    digest = hmac.new(service_key, message, hashlib.sha256).digest()
    return "ent_" + base64.b32encode(digest[:15]).decode().lower()
