"""Run inside the clkhash peer venv: make the golden cases that fold and that re-draw.

Usage: python clkhash_golden.py GOLDEN_DIR

Writes, next to the shared cases, with clkhash 0.18.3's own ``generate_clks``:

- ``febrl4a_xor_folds``: febrl4a's records and schema with ``clkConfig.xor_folds`` 1 (the key
  clkhash reads), so every CLK is a folded 2048-bit filter;
- ``febrl4a_xor_folds_unaligned``: two folds of a 1020-bit CLK (halves that are not whole
  bytes);
- ``prevent_singularity_redraw``: a 64-bit double-hash schema with ``prevent_singularity``,
  where about one token in 64 has h2 = 0 mod l and is re-drawn (some twice).

Each case gets schema.json, data.csv, secret.txt, clks.json and a README.txt saying how it
was made.
"""

import base64
import csv
import json
import sys
from pathlib import Path

from clkhash import clk
from clkhash.schema import from_json_dict

SECRET = b"golden: folded and re-drawn"


def _rows(path, count):
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        return header, [row for _, row in zip(range(count), reader, strict=False)]


def _write(folder, schema, header, rows, how):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "schema.json").write_text(json.dumps(schema, indent=2) + "\n", encoding="utf-8")
    with open(folder / "data.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    (folder / "secret.txt").write_bytes(SECRET)
    clks = clk.generate_clks(rows, from_json_dict(schema), SECRET, max_workers=1)
    (folder / "clks.json").write_text(json.dumps(
        {"clks": [base64.b64encode(c.tobytes()).decode("ascii") for c in clks]}) + "\n",
        encoding="utf-8")
    (folder / "README.txt").write_text(
        "Reference CLKs computed by clkhash 0.18.3 (generate_clks, secret = the bytes of "
        "secret.txt) with benchmarks/peers/clkhash_golden.py, run in .peers/clkhash.\n"
        f"{how}\n", encoding="utf-8")


def main():
    golden = Path(sys.argv[1])
    base = golden / "febrl4a_bits_per_token"
    schema = json.loads((base / "schema.json").read_text(encoding="utf-8"))
    header, rows = _rows(base / "data.csv", 500)
    folded = json.loads(json.dumps(schema))
    folded["clkConfig"]["xor_folds"] = 1
    _write(golden / "febrl4a_xor_folds", folded, header, rows,
           "febrl4a_bits_per_token's first 500 records and schema, clkConfig.xor_folds = 1.")
    unaligned = json.loads(json.dumps(schema))
    unaligned["clkConfig"].update({"l": 1020, "xor_folds": 2})
    for feature in unaligned["features"]:  # BLAKE2 needs a power of two; double hashing not
        if "hashing" in feature:
            feature["hashing"]["hash"] = {"type": "doubleHash"}
    _write(golden / "febrl4a_xor_folds_unaligned", unaligned, header, rows[:200],
           "febrl4a's first 200 records and schema with double hashing, l = 1020 and "
           "clkConfig.xor_folds = 2 (4080-bit filters folded twice: the second fold's halves "
           "are 1020 bits, not whole bytes).")
    redraw = {
        "version": 3,
        "clkConfig": {"l": 64, "kdf": {"type": "HKDF", "hash": "SHA256",
                                       "salt": base64.b64encode(b"redraw-salt").decode(),
                                       "info": base64.b64encode(b"redraw-info").decode(),
                                       "keySize": 64}},
        "features": [
            {"identifier": name, "format": {"type": "string", "encoding": "utf-8"},
             "hashing": {"comparison": {"type": "ngram", "n": 2, "positional": positional},
                         "strategy": {"bitsPerToken": 3},
                         "hash": {"type": "doubleHash", "prevent_singularity": True}}}
            for name, positional in (("given_name", False), ("surname", False),
                                     ("address_1", False), ("date_of_birth", True))
        ],
    }
    wanted = [header.index(f["identifier"]) for f in redraw["features"]]
    _write(golden / "prevent_singularity_redraw", redraw,
           [f["identifier"] for f in redraw["features"]],
           [[row[i] for i in wanted] for row in rows],
           "64-bit filters, double hashing with prevent_singularity over febrl4a's first 500 "
           "records: tokens whose h2 is 0 mod 64 are re-drawn (appending chr(0), then chr(1)).")


if __name__ == "__main__":
    main()
