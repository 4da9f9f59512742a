"""Fairness report speed: 1,000,000 decisions with 3 protected attributes and one intersection, on one
core (target: at most 2 s).

    .venv/bin/python benchmarks/fairness.py [--rows 1000000] [--seed 0]

The data: sex (2 groups), race (9 groups of very different sizes, the smallest under the minimum
group size of 100 at some sizes, 1% of rows undeclared) and age band (6 groups); a 0/1 decision whose
approval rate depends on the groups; a 0/1 label correlated with it, missing (NaN) for the latest 30%
of rows because labels arrive late. The timed step is what a report does per attribute and for the
sex & race intersection: group_labels, then group_fairness with labels (demographic parity, equalized
odds, each with a 2,000-replicate bootstrap interval), then summarise. The process is pinned to one
CPU with one BLAS/OpenMP thread; the data is generated in memory in the same process, untimed, so the
peak RSS includes it. The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

MAX_S = 2
MIN_GROUP_SIZE = 100
SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
SEX = {"female": (0.49, -0.04), "male": (0.51, 0.0)}  # group: (share, shift of the approval logit)
RACE = {
    "race_1": (0.6, 0.0),
    "race_2": (0.13, -0.35),
    "race_3": (0.11, -0.2),
    "race_4": (0.07, 0.1),
    "race_5": (0.04, -0.1),
    "race_6": (0.03, -0.25),
    "race_7": (0.01845, -0.15),
    "race_8": (0.0014, -0.3),  # 1,400 rows in a million: under 100 below about 70,000 rows
    "race_9": (0.00015, -0.4),  # 150 in a million: its sex & race cells are always under 100
}
AGE_BAND = {
    "18-24": (0.12, -0.4),
    "25-34": (0.22, -0.1),
    "35-44": (0.21, 0.05),
    "45-54": (0.19, 0.1),
    "55-64": (0.15, 0.05),
    "65+": (0.11, -0.2),
}
ATTRIBUTES = {"sex": SEX, "race": RACE, "age_band": AGE_BAND}
INTERSECTIONS = [["sex", "race"]]
UNDECLARED_RACE = 0.01
LATE_LABELS = 0.3


def make_frame(rows: int, seed: int):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    columns, logit = {}, np.zeros(rows)
    for attribute, groups in ATTRIBUTES.items():
        names = np.array(list(groups), dtype=object)
        shares = np.array([share for share, _ in groups.values()])
        codes = rng.choice(len(names), size=rows, p=shares / shares.sum())
        logit += np.array([shift for _, shift in groups.values()])[codes]
        values = names[codes]
        if attribute == "race":
            values[rng.random(rows) < UNDECLARED_RACE] = None
        columns[attribute] = values
    merit = rng.normal(0, 1, rows)  # what the label measures; the decision sees it through noise
    decision = (merit + logit + rng.normal(0, 0.7, rows) > 0.1).astype(np.int64)
    label = (merit + rng.normal(0, 0.5, rows) > 0).astype(np.float64)
    label[int(rows * (1 - LATE_LABELS)) :] = np.nan  # the latest decisions have no outcome yet
    return pd.DataFrame({**columns, "decision": decision, "label": label})


def interval(ci) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "[n/a]"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.update(SINGLE_THREAD_ENV)  # before NumPy is imported
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})

    from rai_pipelines.monitoring.fairness import group_fairness, group_labels, summarise

    start = time.perf_counter()
    frame = make_frame(args.rows, args.seed)
    print(
        f"data: {args.rows} rows, {len(ATTRIBUTES)} protected attributes ({', '.join(ATTRIBUTES)}), "
        f"{frame['label'].notna().mean():.0%} labelled, approval rate {frame['decision'].mean():.3f}; "
        f"generated in memory in {time.perf_counter() - start:.1f} s (not timed)"
    )

    timings, results = {}, []
    start = time.perf_counter()
    for attributes in [[a] for a in ATTRIBUTES] + INTERSECTIONS:
        name = "&".join(attributes)
        began = time.perf_counter()
        groups = group_labels(frame, attributes)
        results.append(group_fairness(frame["decision"], groups, 1, MIN_GROUP_SIZE, name, True, labels=frame["label"]))
        timings[name] = time.perf_counter() - began
    summary = summarise(results)
    seconds = time.perf_counter() - start
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    for r in results:
        small = sum(not g["eligible"] for g in r.groups.values())
        ratio = f"{r.ratio:.3f}" if r.ratio is not None else "n/a"
        odds = f"{r.equalized_odds_ratio:.3f}" if r.equalized_odds_ratio is not None else "n/a"
        print(
            f"  {r.attribute:<9} {len(r.groups):>2} groups ({small} under {MIN_GROUP_SIZE} rows): "
            f"parity ratio {ratio} {interval(r.ratio_ci)}, worst {r.worst_group}; "
            f"equalized odds {odds} {interval(r.equalized_odds_ci)}, worst {r.equalized_odds_worst_group}; "
            f"{timings[r.attribute]:.3f} s"
        )
    score = f"{summary.score:.3f}" if summary.score is not None else "n/a"
    odds = f"{summary.equalized_odds:.3f}" if summary.equalized_odds is not None else "n/a"
    print(
        f"summary: fairness score {score} {interval(summary.score_ci)} ({summary.worst_attribute}, "
        f"{summary.worst_group}), equalized odds {odds}"
    )
    print(
        f"fairness report on CPU {cpu}: {seconds:.3f} s [limit {MAX_S} s: {'ok' if seconds <= MAX_S else 'OVER'}]; "
        f"peak RSS of the process {peak_rss_mb:.0f} MB (data generation included)"
    )
    print(
        json.dumps(
            {
                "rows": args.rows,
                "attributes": len(ATTRIBUTES),
                "intersections": len(INTERSECTIONS),
                "seconds": round(seconds, 3),
                "max_s": MAX_S,
                "peak_rss_mb": round(peak_rss_mb, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
