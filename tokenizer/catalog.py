"""Curated linkage schemas shipped as package data, and resolution of ``--schema`` values."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .errors import SchemaError, SchemaIssue
from .schema_loader import schema_from_json_text
from .schema_model import Schema

__all__ = ["ShippedSchema", "shipped_schemas", "shipped_schema_text", "load_schema"]

_PACKAGE = "tokenizer.schemas"


@dataclass(frozen=True)
class ShippedSchema:
    name: str
    description: str


def _schema_files() -> dict[str, resources.abc.Traversable]:
    return {
        entry.name.removesuffix(".json"): entry
        for entry in resources.files(_PACKAGE).iterdir()
        if entry.name.endswith(".json")
    }


def shipped_schemas() -> list[ShippedSchema]:
    """Names and one-line descriptions of the schemas that ship with the tokenizer."""
    found = []
    for name, entry in sorted(_schema_files().items()):
        doc = json.loads(entry.read_text(encoding="utf-8"))
        found.append(ShippedSchema(name, doc.get("description", "")))
    return found


def shipped_schema_text(name: str) -> str:
    """The JSON text of a shipped schema."""
    files = _schema_files()
    if name not in files:
        raise SchemaError(name, [SchemaIssue("$", f"no shipped schema named {name!r}; "
                                                  f"shipped: {sorted(files)}")])
    return files[name].read_text(encoding="utf-8")


def load_schema(name_or_path: str | Path) -> Schema:
    """Load a shipped schema by name (``febrl``, ``person``) or a schema file by path.

    A value that names an existing file is read as a file; otherwise it must be a shipped name.
    """
    path = Path(name_or_path)
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise SchemaError(str(path), [SchemaIssue("$", f"cannot be read: {e}")]) from e
        return schema_from_json_text(text, str(path))
    name = str(name_or_path)
    if name in _schema_files():
        return schema_from_json_text(shipped_schema_text(name), name)
    raise SchemaError(name, [SchemaIssue(
        "$", f"is neither a schema file nor a shipped schema name; shipped: "
             f"{sorted(_schema_files())}")])
