"""Run inside the clkhash peer venv: clkhash's verdict on each row of each job.

Usage: python clkhash_oracle.py JOBS.json OUT.json
JOBS.json: [{"schema": {...}, "secret_b64": "...", "rows": [[str, ...], ...]}, ...]
OUT.json: one list per job, one entry per row: the CLK in base64, or null when clkhash
rejects the row (validation or hashing raised).
"""

import base64
import json
import sys

from clkhash import clk
from clkhash.schema import from_json_dict
from clkhash.validate_data import validate_entries


def verdicts(job):
    schema = from_json_dict(job["schema"])
    secret = base64.b64decode(job["secret_b64"])
    out = []
    for row in job["rows"]:
        try:
            validate_entries(schema.fields, [row])
            (encoded,) = clk.generate_clks([row], schema, secret, validate=False, max_workers=1)
        except Exception:  # noqa: BLE001 - any refusal by clkhash is a rejection
            out.append(None)
            continue
        out.append(base64.b64encode(encoded.tobytes()).decode("ascii"))
    return out


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as handle:
        jobs = json.load(handle)
    with open(sys.argv[2], "w", encoding="utf-8") as handle:
        json.dump([verdicts(job) for job in jobs], handle)


if __name__ == "__main__":
    main()
