"""How long loading the Dagster definitions takes, in a fresh interpreter (target: under 3 s).

    .venv/bin/python benchmarks/definitions_load.py [--repeat 5]

Prints one JSON line: seconds (median), max_s, peak_rss_mb of the loading process.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

CODE = """
import resource, time
t = time.perf_counter()
import rai_pipelines.definitions as d
d.defs().resolve_asset_graph()
print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    seconds, rss = [], []
    for _ in range(args.repeat):
        out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True)
        s, r = map(float, out.stdout.split())
        seconds.append(s)
        rss.append(r)
        print(f"load: {s:.3f} s, peak RSS {r:.0f} MB")
    print(
        json.dumps(
            {
                "seconds": round(statistics.median(seconds), 3),
                "max_s": round(max(seconds), 3),
                "peak_rss_mb": round(max(rss), 1),
            }
        )
    )


if __name__ == "__main__":
    main()
