"""The golden vectors of clkhash 0.18.3 shipped in ``tests/data/golden/clkhash``."""

from __future__ import annotations

import base64
import csv
import json
from dataclasses import dataclass
from pathlib import Path

GOLDEN_DIR = Path(__file__).parent / "data" / "golden" / "clkhash"
CASES = sorted(p.name for p in GOLDEN_DIR.iterdir() if (p / "schema.json").is_file())


@dataclass(frozen=True)
class GoldenCase:
    name: str
    folder: Path

    @property
    def schema_path(self) -> Path:
        return self.folder / "schema.json"

    @property
    def data_path(self) -> Path:
        return self.folder / "data.csv"

    @property
    def invalid_path(self) -> Path:
        return self.folder / "invalid.csv"

    @property
    def secret(self) -> bytes:
        # README: the secret is the UTF-8 bytes of secret.txt.
        return (self.folder / "secret.txt").read_bytes()

    def expected_clks(self) -> list[bytes]:
        doc = json.loads((self.folder / "clks.json").read_text(encoding="utf-8"))
        return [base64.b64decode(c) for c in doc["clks"]]

    def rows(self, path: Path | None = None) -> tuple[list[str], list[dict[str, str]]]:
        with (path or self.data_path).open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            return list(reader.fieldnames or []), list(reader)


def case(name: str) -> GoldenCase:
    return GoldenCase(name, GOLDEN_DIR / name)
