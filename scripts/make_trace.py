"""Write the small synthetic trace shipped in data/traces/ (what `workload=trace` replays by default).

`python scripts/make_trace.py data/traces/mixed_burst.jsonl`: 48 requests over about 12 s, bursty
(gamma gaps, burstiness 0.5, seed 0); three in four are short chat-like turns (priority 0), one in
four a long prompt with a short answer (priority 1); two lines give prompt_token_ids instead of a length.
"""

import json
import sys

import numpy as np

from allmos.bench.arrivals import arrival_times


def main(out: str, n: int = 48, rate: float = 4.0) -> None:
    rng = np.random.default_rng(0)
    times = arrival_times(n, rate, "gamma", 0.5, rng)
    with open(out, "w") as f:
        for i, t in enumerate(times):
            long_prompt = rng.random() < 0.25
            line = {"arrival_s": round(t, 3)}
            if i in (3, 17):
                line["prompt_token_ids"] = rng.integers(0, 10000, size=int(rng.integers(8, 24))).tolist()
            else:
                line["prompt_len"] = int(rng.integers(1024, 2049) if long_prompt else rng.integers(32, 513))
            line["output_len"] = int(rng.integers(16, 65) if long_prompt else rng.integers(16, 257))
            line["priority"] = int(long_prompt)
            f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
