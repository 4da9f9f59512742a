"""Decisions per second of the reference policy on the embedded engine (regopy), one core, one
compiled bundle reused across inputs, the way the sensor evaluates a batch of deployments.

    .venv/bin/python benchmarks/policy_decisions.py [--decisions 20000] [--versions 1000]

Prints one JSON line: seconds, decisions_per_s, peak_rss_mb.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import time

from rai_pipelines.policy import PolicyBundle, RegopyEngine, evaluate_decisions
from rai_pipelines.settings import PROJECT_ROOT


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--decisions", type=int, default=20_000)
    parser.add_argument("--versions", type=int, default=1_000)
    args = parser.parse_args()
    rng = random.Random(7)
    facts = {
        f"{i}.0.0": {
            "fairness_score": rng.uniform(0.6, 1.0),
            "estimated_cost_per_inference_usd": rng.uniform(0.0005, 0.008),
        }
        for i in range(args.versions)
    }
    manifests = [
        {
            "kind": "Deployment",
            "metadata": {"name": "m", "labels": {"app": "credit-scoring-ai"}},
            "spec": {"template": {"metadata": {"labels": {"model-version": f"{rng.randrange(args.versions)}.0.0"}}}},
        }
        for _ in range(args.decisions)
    ]
    bundle = PolicyBundle.load(PROJECT_ROOT / "policies")
    engine = RegopyEngine()
    start = time.perf_counter()
    results = evaluate_decisions(engine, bundle, manifests, facts)
    seconds = time.perf_counter() - start
    denied = sum(1 for r in results if not r.allowed)
    expected = sum(
        1
        for m in manifests
        if (f := facts[m["spec"]["template"]["metadata"]["labels"]["model-version"]])["fairness_score"] < 0.8
        or f["estimated_cost_per_inference_usd"] > 0.005
    )
    assert denied == expected, (denied, expected)
    print(f"{args.decisions} decisions over {args.versions} model versions, {denied} denied, in {seconds:.2f} s")
    print(
        json.dumps(
            {
                "seconds": round(seconds, 3),
                "decisions_per_s": round(args.decisions / seconds),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
