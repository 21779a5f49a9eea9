"""Gather result.json records under a folder into one JSON list and print a one-line summary each.

Used on the GPU machine, where only a few files can come back: `python scripts/collect_records.py
RUNS_DIR OUT.json`.
"""

import glob
import json
import os
import sys


def main(folder: str, out: str) -> None:
    records = []
    for path in sorted(glob.glob(os.path.join(folder, "**", "result.json"), recursive=True)):
        with open(path) as f:
            record = json.load(f)
        record["path"] = os.path.relpath(path, folder)
        records.append(record)
        m = record.get("metrics") or {}
        probe = (record.get("correctness") or {}).get("passed")
        print(
            f"{record['path']:50s} {record.get('status'):6s} out_tok/s={m.get('output_tok_s') or 0:9.1f} "
            f"wall={m.get('wall_s') or 0:7.2f}s roofline={m.get('roofline')} probe={probe} "
            f"{record.get('error') or ''}"[:400]
        )
    with open(out, "w") as f:
        json.dump(records, f, indent=1, default=str)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
