"""Run inside the clkhash peer venv: encode a CSV with clkhash and time generate_clks alone.

Usage: python clkhash_encode.py SCHEMA.json DATA.csv SECRET_FILE OUT.json WORKERS
Prints one JSON line: records, seconds (generate_clks only).
"""

import base64
import csv
import json
import sys
import time

from clkhash import clk
from clkhash.schema import from_json_dict


def main() -> None:
    schema_path, data_path, secret_path, out_path, workers = sys.argv[1:6]
    with open(schema_path, encoding="utf-8") as handle:
        schema = from_json_dict(json.load(handle))
    with open(secret_path, "rb") as handle:
        secret = handle.read()
    with open(data_path, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))[1:]
    started = time.perf_counter()
    clks = clk.generate_clks(rows, schema, secret, max_workers=int(workers))
    seconds = time.perf_counter() - started
    with open(out_path, "w", encoding="ascii") as handle:
        json.dump({"clks": [base64.b64encode(c.tobytes()).decode("ascii") for c in clks]},
                  handle)
    print(json.dumps({"records": len(rows), "seconds": seconds}))


if __name__ == "__main__":
    main()
