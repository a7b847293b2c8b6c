"""Live comparison with clkhash 0.18.3 on schemas and values the golden vectors do not cover.

clkhash runs from its own venv under ``.peers/clkhash`` (created on first use; it pins
cryptography < 41, so it never enters ``.venv``). Each row is either encoded to the same bytes
by both, or rejected by both.
"""

from __future__ import annotations

import base64
import json
import random
import subprocess

import pyarrow as pa
import pytest

from benchmarks.peers import SCRIPTS_DIR, peer_python
from tokenizer.encoder import ClkEncoder
from tokenizer.schema_loader import schema_from_dict

pytestmark = pytest.mark.oracle

# Values chosen to sit on the edges of each format's validation.
INTEGERS = ["7", "+7", "-7", "07", " 7", "7 ", "1_000", "", "x", "99999", "-0", "1e3", "٣"]
DATES_ISO = ["1970-01-02", "1970-1-2", "2000-02-30", "2000-02-29", "1999-02-29", "", "19700102",
             " 1970-01-02"]
DATES_DMY = ["02/01/1970", "2/1/1970", "31/04/2001", "31/12/1999", "1970-01-02", ""]
TEXT = ["smith", "Smith", "SMITH", "o'neil", "de la cruz", "", " ", "zoë", "Ångström", "名前",
        "a", "ab", "x" * 40, "tab\there", "émile-zola"]
NUMBERS = ["7", "7.5", "-3.25", "1e3", "nan", "inf", "", "abc", "0.001", "12345678901234567890"]


def _feature(rng: random.Random, i: int) -> tuple[dict, list[str]]:
    kind = rng.choice(["text", "text-case", "text-length", "pattern", "ascii", "integer",
                       "date-iso", "date-dmy", "enum", "numeric"])
    comparison = rng.choice([{"type": "ngram", "n": rng.randint(1, 3),
                              "positional": rng.random() < 0.5}, {"type": "exact"}])
    values = TEXT
    if kind == "text":
        fmt = {"type": "string", "encoding": rng.choice(["utf-8", "utf-16"])}
    elif kind == "text-case":
        fmt = {"type": "string", "case": rng.choice(["lower", "upper", "mixed"])}
    elif kind == "text-length":
        fmt = {"type": "string", "minLength": rng.randint(0, 3), "maxLength": rng.randint(4, 20)}
    elif kind == "pattern":
        fmt = {"type": "string", "pattern": rng.choice(["[a-z]+", "[A-Za-z' -]*", "s.*"])}
    elif kind == "ascii":
        fmt = {"type": "string", "encoding": "ascii"}
    elif kind == "integer":
        fmt = {"type": "integer", "minimum": rng.choice([0, -5]), "maximum": 1000}
        values = INTEGERS
    elif kind == "date-iso":
        fmt = {"type": "date", "format": "%Y-%m-%d"}
        values = DATES_ISO
    elif kind == "date-dmy":
        fmt = {"type": "date", "format": "%d/%m/%Y"}
        values = DATES_DMY
    elif kind == "enum":
        fmt = {"type": "enum", "values": ["smith", "SMITH", ""]}
    else:
        fmt = {"type": "string"}
        comparison = {"type": "numeric", "thresholdDistance": rng.choice([1, 2.5, 10]),
                      "resolution": rng.randint(1, 3),
                      "fractional_precision": rng.randint(0, 2)}
        values = NUMBERS
    hashing = {"comparison": comparison,
               "strategy": rng.choice([{"bitsPerToken": rng.randint(1, 30)},
                                       {"bitsPerFeature": rng.randint(1, 200)}]),
               "hash": rng.choice([{"type": "doubleHash"}, {"type": "blakeHash"},
                                   {"type": "doubleHash", "prevent_singularity": True}])}
    if rng.random() < 0.3:
        hashing["missingValue"] = {"sentinel": "", "replaceWith": rng.choice(["", "0"])}
    return {"identifier": f"c{i}", "format": fmt, "hashing": hashing}, values


def _job(rng: random.Random) -> dict:
    features, pools = zip(*(_feature(rng, i) for i in range(rng.randint(1, 4))), strict=True)
    features = list(features)
    if rng.random() < 0.3:
        features.insert(rng.randint(0, len(features)), {"identifier": "skip", "ignored": True})
    schema = {"version": 3,
              "clkConfig": {"l": rng.choice([512, 1024, 2048]), "xor_folds": rng.randint(0, 1),
                            "kdf": {"type": "HKDF", "hash": rng.choice(["SHA256", "SHA512"]),
                                    "salt": base64.b64encode(rng.randbytes(12)).decode(),
                                    "info": base64.b64encode(rng.randbytes(4)).decode(),
                                    "keySize": rng.choice([32, 64])}},
              "features": features}
    hashed = [f for f in features if not f.get("ignored")]
    by_id = dict(zip((f["identifier"] for f in hashed), pools, strict=True))
    rows = [[rng.choice(by_id[f["identifier"]]) if f["identifier"] in by_id else "ignored"
             for f in features] for _ in range(25)]
    return {"schema": schema, "secret_b64": base64.b64encode(rng.randbytes(20)).decode(),
            "rows": rows}


def test_same_clks_and_same_rejections_as_clkhash(tmp_path) -> None:
    rng = random.Random(20261125)
    jobs = [_job(rng) for _ in range(120)]
    (tmp_path / "jobs.json").write_text(json.dumps(jobs), encoding="utf-8")
    python = peer_python("clkhash")
    subprocess.run([str(python), str(SCRIPTS_DIR / "clkhash_oracle.py"),
                    str(tmp_path / "jobs.json"), str(tmp_path / "verdicts.json")],
                   check=True, timeout=600)
    verdicts = json.loads((tmp_path / "verdicts.json").read_text(encoding="utf-8"))
    compared = rejected = 0
    for job, expected in zip(jobs, verdicts, strict=True):
        schema = schema_from_dict(job["schema"])
        encoder = ClkEncoder(schema, base64.b64decode(job["secret_b64"]))
        names = [f["identifier"] for f in job["schema"]["features"]]
        columns = {n: pa.array([row[names.index(n)] for row in job["rows"]], pa.string())
                   for n in encoder.required_columns}
        encoded = encoder.encode(columns)
        ours = iter(encoded.clks)
        for i, theirs in enumerate(expected):
            context = f"schema {json.dumps(job['schema'])}, row {job['rows'][i]}"
            assert bool(encoded.valid[i]) == (theirs is not None), context
            if theirs is None:
                rejected += 1
                continue
            assert base64.b64encode(next(ours).tobytes()).decode() == theirs, context
            compared += 1
    assert compared > 1000 and rejected > 200  # both outcomes are well exercised
