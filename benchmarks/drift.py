"""Drift report speed and memory: 1,000,000 current rows by 50 features (40 numeric, 10 categorical)
against a 1,000,000-row reference, on one core (targets: at most 10 s, peak memory at most 2 GB, and at
least 10 times faster than Evidently's DataDriftPreset on the same data).

    .venv/bin/python benchmarks/drift.py [--rows 1000000] [--reference-rows 1000000] [--numeric 40]
        [--categorical 10] [--levels 20] [--seed 0] [--skip-peer] [--workdir DIR]

Three processes keep the figures clean. A generator process writes reference.parquet and
current.parquet (numeric columns of varied shapes: normal, lognormal, integer-valued with ties,
counts, heavy-tailed; dictionary-encoded string categories with Zipf-like frequencies; a model score
in [0, 1]). The current window shifts three numeric columns (a mean shift of 0.3 sd, a 1.5x spread,
and a 0.02 sd shift that the effect-size threshold must not report) and one category's frequencies.
The measured process, pinned to one CPU with one BLAS/OpenMP thread, reads both files with pandas,
fits the columnar detector's reference profile and runs detect; its peak RSS is its own (the parent
stays small, because a child's ru_maxrss starts from its parent's high-water mark on Linux).
Evidently runs in its own virtual environment (benchmarks/peers.py) on the same files; its time
excludes the reads, so it is compared with our report time (fit + detect), which excludes them too.
The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from harness import SINGLE_THREAD_ENV, pin_to_one_core, run_in_workdir  # noqa: E402

MAX_S = 10
MAX_RSS_MB = 2048
NUMERIC_KINDS = (
    "normal",
    "lognormal",
    "rounded",  # integer-valued (an age), so with many ties
    "counts",  # Poisson counts, a handful of distinct values
    "student_t",  # heavy-tailed (3 degrees of freedom)
    "uniform",
    "exponential",
    "bimodal",
    "pareto",  # heavy right tail
    "beta",  # a share in [0, 1] with three decimals
)
MEAN_SHIFT, SPREAD_CHANGE, SMALL_SHIFT = 0, 2, 10  # indices of the shifted numeric columns
SHIFTED_CATEGORY = 3


def numeric_names(count: int) -> list[str]:
    return [f"num_{i:02d}_{NUMERIC_KINDS[i % len(NUMERIC_KINDS)]}" for i in range(count)]


def categorical_names(count: int) -> list[str]:
    return [f"cat_{k:02d}" for k in range(count)]


def expected_drift(numeric: list[str], categorical: list[str]) -> list[str]:
    wanted = [numeric[i] for i in (MEAN_SHIFT, SPREAD_CHANGE) if i < len(numeric)]
    return wanted + ([categorical[SHIFTED_CATEGORY]] if SHIFTED_CATEGORY < len(categorical) else [])


# -- the data (generator process) --------------------------------------------------------------------
def numeric_column(kind: str, n: int, rng, loc: float, scale: float):
    import numpy as np

    if kind == "normal":
        return rng.normal(loc, scale, n)
    if kind == "lognormal":
        return np.exp(rng.normal(np.log(1000 * scale), 0.7, n))
    if kind == "rounded":
        return np.round(rng.normal(40 + loc, 12, n))
    if kind == "counts":
        return rng.poisson(0.5 + scale, n).astype(np.float64)
    if kind == "student_t":
        return loc + scale * rng.standard_t(3, n)
    if kind == "uniform":
        return rng.uniform(loc, loc + 5 * scale, n)
    if kind == "exponential":
        return rng.exponential(scale, n)
    if kind == "bimodal":
        return np.where(rng.random(n) < 0.3, rng.normal(loc - 2 * scale, scale / 2, n), rng.normal(loc, scale, n))
    if kind == "pareto":
        return scale * (1 + rng.pareto(2.5, n))
    return np.round(rng.beta(2, 5, n), 3)


def zipf_shares(levels: int, exponent: float):
    import numpy as np

    weights = 1 / np.arange(1, levels + 1) ** exponent
    return weights / weights.sum()


def window(args: argparse.Namespace, rows: int, rng, params: dict, reference_stats: dict | None):
    """One window as an Arrow table; with reference_stats (the reference's mean and sd per column) it
    is the current window, with the intended shifts."""
    import numpy as np
    import pyarrow as pa

    numeric, categorical = numeric_names(args.numeric), categorical_names(args.categorical)
    columns: dict[str, pa.Array] = {}
    stats: dict[str, tuple[float, float]] = {}
    logit = np.zeros(rows)
    for i, name in enumerate(numeric):
        kind = NUMERIC_KINDS[i % len(NUMERIC_KINDS)]
        values = numeric_column(kind, rows, rng, *params[name])
        if reference_stats is None:
            stats[name] = (float(values.mean()), float(values.std()))
        mean, sd = (reference_stats or stats)[name]
        if reference_stats is not None and i in (MEAN_SHIFT, SPREAD_CHANGE, SMALL_SHIFT):
            if i == SPREAD_CHANGE:
                values = mean + 1.5 * (values - mean)
            else:
                values = values + (0.3 if i == MEAN_SHIFT else 0.02) * sd
            if kind in ("rounded", "counts"):
                values = np.round(values)
        if i < 6:  # the score leans on the first numeric columns
            logit += (0.8 if i % 2 == 0 else -0.5) * (values - mean) / sd
        columns[name] = pa.array(values)
    for k, name in enumerate(categorical):
        levels, exponent = params[name]
        shares = zipf_shares(levels, exponent)
        if reference_stats is not None and k == SHIFTED_CATEGORY:
            shares[0] *= 0.5  # the commonest level loses half its share to the others
            shares /= shares.sum()
        codes = rng.choice(levels, size=rows, p=shares).astype(np.int32)
        if k < 2:
            logit += 0.4 * (codes == 0)
        dictionary = pa.array([f"{name}_level_{j:02d}" for j in range(levels)])
        columns[name] = pa.DictionaryArray.from_arrays(pa.array(codes), dictionary)
    logit += rng.normal(0, 0.5, rows)
    columns["score"] = pa.array(1 / (1 + np.exp(-(logit - 0.5))))
    return pa.table(columns), stats


def generate(args: argparse.Namespace) -> None:
    import numpy as np
    import pyarrow.parquet as pq

    setup = np.random.default_rng([args.seed, 0])
    params: dict = {
        name: (float(setup.normal(0, 5)), float(setup.uniform(0.5, 3))) for name in numeric_names(args.numeric)
    }
    for k, name in enumerate(categorical_names(args.categorical)):
        levels = 5 + round(k * (args.levels - 5) / max(1, args.categorical - 1))
        params[name] = (levels, float(setup.uniform(0.8, 1.5)))
    workdir = Path(args.workdir)
    reference, stats = window(args, args.reference_rows, np.random.default_rng([args.seed, 1]), params, None)
    pq.write_table(reference, workdir / "reference.parquet")
    del reference
    current, _ = window(args, args.rows, np.random.default_rng([args.seed, 2]), params, stats)
    pq.write_table(current, workdir / "current.parquet")


# -- the measured step (child process) ----------------------------------------------------------------
def measure(args: argparse.Namespace) -> None:
    cpu = pin_to_one_core()  # before NumPy and Arrow are imported
    import pyarrow.parquet as pq

    from rai_pipelines.monitoring.drift import make_detector

    numeric, categorical = numeric_names(args.numeric), categorical_names(args.categorical)
    workdir = Path(args.workdir)
    start = time.perf_counter()
    # Arrow to pandas column by column, freeing each Arrow buffer once converted, as the assets read
    # the lake: the peak stays near the size of the frames.
    reference = pq.read_table(workdir / "reference.parquet").to_pandas(split_blocks=True, self_destruct=True)
    current = pq.read_table(workdir / "current.parquet").to_pandas(split_blocks=True, self_destruct=True)
    read_s = time.perf_counter() - start
    detector = make_detector(
        "columnar", numeric, categorical, p_value=0.05, correction="bonferroni", min_effect_size=0.1
    )
    start = time.perf_counter()
    detector.profile(reference, "score")
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    result = detector.detect(reference, current, score_column="score")
    detect_s = time.perf_counter() - start
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # What the drift asset keeps in the lake, so that later days do not sort the reference again.
    (workdir / "profile.npz").write_bytes(detector.profile(reference, "score").to_bytes())
    with open("/proc/self/status") as status:
        hwm_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    figures = {
        "cpu": cpu,
        "read_s": read_s,
        "fit_s": fit_s,
        "detect_s": detect_s,
        "peak_rss_mb": peak_rss_mb,
        "vm_hwm_mb": hwm_kb / 1024,
        "threshold": result.threshold,
        "drifted": result.drifted_features,
        "features": [
            {
                "feature": f.feature,
                "kind": f.kind,
                "p_value": f.p_value,
                "statistic": f.statistic,
                "effect_size": f.effect_size,
                "psi": f.psi,
                "significant": f.significant,
                "drifted": f.drifted,
            }
            for f in result.features
        ],
        "prediction": {
            "p_value": result.prediction_p_value,
            "effect_size": result.prediction_effect_size,
            "drifted": result.prediction_drift,
        },
    }
    print(json.dumps(figures), flush=True)


def measure_warm(args: argparse.Namespace) -> None:
    """A later day: the reference's profile is read from the lake, only the day's data from Parquet."""
    pin_to_one_core()  # before NumPy and Arrow are imported
    import pyarrow.parquet as pq

    from rai_pipelines.monitoring.drift import ReferenceProfile, make_detector

    numeric, categorical = numeric_names(args.numeric), categorical_names(args.categorical)
    workdir = Path(args.workdir)
    start = time.perf_counter()
    profile = ReferenceProfile.from_bytes((workdir / "profile.npz").read_bytes())
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    current = pq.read_table(workdir / "current.parquet").to_pandas(split_blocks=True, self_destruct=True)
    read_s = time.perf_counter() - start
    detector = make_detector("columnar", numeric, categorical, p_value=0.05, correction="bonferroni")
    start = time.perf_counter()
    result = detector.detect(None, current, score_column="score", profile=profile)
    detect_s = time.perf_counter() - start
    figures = {
        "load_profile_s": load_s,
        "read_current_s": read_s,
        "detect_s": detect_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "drifted": result.drifted_features,
    }
    print(json.dumps(figures), flush=True)


# -- the parent -------------------------------------------------------------------------------------------
def forwarded(args: argparse.Namespace, workdir: Path) -> list[str]:
    return [
        *("--rows", str(args.rows), "--reference-rows", str(args.reference_rows)),
        *("--numeric", str(args.numeric), "--categorical", str(args.categorical)),
        *("--levels", str(args.levels), "--seed", str(args.seed), "--workdir", str(workdir)),
    ]


def run_self(flag: str, args: argparse.Namespace, workdir: Path, env: dict[str, str] | None = None) -> str:
    command = [sys.executable, str(Path(__file__).resolve()), flag, *forwarded(args, workdir)]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return done.stdout


def evidently_seconds(workdir: Path, numeric: list[str], categorical: list[str]) -> dict:
    from peers import EVIDENTLY_REQUIREMENTS, PEERS_DIR, peer_python, run_peer

    python = peer_python("evidently", EVIDENTLY_REQUIREMENTS)
    return run_peer(
        python,
        PEERS_DIR / "evidently_drift.py",
        *("--reference", str(workdir / "reference.parquet"), "--current", str(workdir / "current.parquet")),
        *("--numeric", ",".join(numeric), "--categorical", ",".join(categorical)),
        timeout=3600,
    )


def report(args: argparse.Namespace, workdir: Path) -> int:
    numeric, categorical = numeric_names(args.numeric), categorical_names(args.categorical)
    start = time.perf_counter()
    run_self("--generate", args, workdir)
    size_mb = sum((workdir / f).stat().st_size for f in ("reference.parquet", "current.parquet")) / 2**20
    print(
        f"data: {args.reference_rows} reference rows and {args.rows} current rows, {len(numeric)} numeric + "
        f"{len(categorical)} categorical features + a score; written to {workdir} as Parquet ({size_mb:.0f} MB) "
        f"in {time.perf_counter() - start:.1f} s (not timed)"
    )
    env = {**os.environ, **SINGLE_THREAD_ENV}
    child = json.loads(run_self("--child", args, workdir, env).splitlines()[-1])
    read_s, fit_s, detect_s = child["read_s"], child["fit_s"], child["detect_s"]
    report_s, total_s = fit_s + detect_s, read_s + fit_s + detect_s
    print(
        f"measured in a child process pinned to CPU {child['cpu']} with one BLAS/OpenMP thread: "
        f"read both Parquet files with pandas {read_s:.2f} s (counted in the total), fit the reference profile "
        f"{fit_s:.2f} s, detect {detect_s:.2f} s (including SciPy's first import)"
    )
    print(
        f"total (read + fit + detect) {total_s:.2f} s [limit {MAX_S} s: {'ok' if total_s <= MAX_S else 'OVER'}], "
        f"report (fit + detect) {report_s:.2f} s; peak RSS of the child {child['peak_rss_mb']:.0f} MB "
        f"[limit {MAX_RSS_MB} MB: {'ok' if child['peak_rss_mb'] <= MAX_RSS_MB else 'OVER'}] "
        f"(its VmHWM: {child['vm_hwm_mb']:.0f} MB)"
    )

    warm = json.loads(run_self("--warm-child", args, workdir, env).splitlines()[-1])
    warm_s = warm["load_profile_s"] + warm["read_current_s"] + warm["detect_s"]
    print(
        f"a later day, with the reference profile stored in the lake (the asset keeps it): load profile "
        f"{warm['load_profile_s']:.2f} s + read the day {warm['read_current_s']:.2f} s + detect "
        f"{warm['detect_s']:.2f} s = {warm_s:.2f} s [limit {MAX_S} s: {'ok' if warm_s <= MAX_S else 'OVER'}]; "
        f"peak RSS {warm['peak_rss_mb']:.0f} MB; same drifted features: {warm['drifted'] == child['drifted']}"
    )

    features = {f["feature"]: f for f in child["features"]}
    small = numeric[SMALL_SHIFT] if SMALL_SHIFT < len(numeric) else None
    print(f"per-feature p-value threshold after Bonferroni: {child['threshold']:.2e}; min effect size 0.1")
    for name in dict.fromkeys([*expected_drift(numeric, categorical), *child["drifted"], *([small] if small else [])]):
        f = features[name]
        print(
            f"  {name:<20} {f['kind']:<11} p={f['p_value']:.3g} effect={f['effect_size']:.4f} psi={f['psi']:.4f} "
            f"significant={f['significant']} drifted={f['drifted']}"
        )
    others = [f for f in child["features"] if f["feature"] not in expected_drift(numeric, categorical)]
    if small:
        others = [f for f in others if f["feature"] != small]
    if others:
        print(
            f"  the other {len(others)} features: {sum(f['significant'] for f in others)} significant, "
            f"largest effect {max(f['effect_size'] for f in others):.4f}, "
            f"smallest p {min(f['p_value'] for f in others):.3g}"
        )
    prediction = child["prediction"]
    if prediction["p_value"] is not None:
        print(
            f"  prediction (score): p={prediction['p_value']:.3g} effect={prediction['effect_size']:.4f} "
            f"drifted={prediction['drifted']}"
        )
    expected = expected_drift(numeric, categorical)
    ok = sorted(child["drifted"]) == sorted(expected) and not (small and features[small]["drifted"])
    print(f"drifted features: {child['drifted']} (expected {expected}): {'ok' if ok else 'UNEXPECTED'}")

    peer: dict | None = None
    failed = False
    if args.skip_peer:
        print("evidently: skipped (--skip-peer)")
    else:
        try:
            peer = evidently_seconds(workdir, numeric, categorical)
        except RuntimeError as exc:
            failed = True
            print(f"evidently: FAILED: {exc}", file=sys.stderr)
            print("evidently: failed (see stderr)")
    vs_peer = None
    if peer is not None:
        vs_peer = peer["seconds"] / report_s
        print(
            f"evidently {peer['evidently_version']} DataDriftPreset on the same data: {peer['seconds']:.1f} s "
            f"(reads excluded), {peer['drifted_columns']} of {peer['columns']} columns drifted; ours (fit + detect) "
            f"is {vs_peer:.1f}x faster [target 10x: {'ok' if vs_peer >= 10 else 'SHORT'}]"
        )
    print(
        json.dumps(
            {
                "rows": args.rows,
                "reference_rows": args.reference_rows,
                "features": len(numeric) + len(categorical),
                "read_s": round(read_s, 3),
                "fit_s": round(fit_s, 3),
                "detect_s": round(detect_s, 3),
                "report_s": round(report_s, 3),
                "total_s": round(total_s, 3),
                "peak_rss_mb": round(child["peak_rss_mb"], 1),
                "daily_report_s": round(warm_s, 3),
                "daily_report_peak_rss_mb": round(warm["peak_rss_mb"], 1),
                "max_s": MAX_S,
                "max_rss_mb": MAX_RSS_MB,
                "drifted": child["drifted"],
                "evidently_s": round(peer["seconds"], 2) if peer else None,
                "evidently_version": peer["evidently_version"] if peer else None,
                "vs_peer": round(vs_peer, 1) if vs_peer is not None else None,
            }
        )
    )
    return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reference-rows", type=int, default=1_000_000)
    parser.add_argument("--numeric", type=int, default=40)
    parser.add_argument("--categorical", type=int, default=10)
    parser.add_argument("--levels", type=int, default=20, help="levels of the widest categorical feature (>= 5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-peer", action="store_true", help="do not run Evidently")
    parser.add_argument("--workdir", help="where the Parquet files go (default: a temporary directory, removed)")
    parser.add_argument("--generate", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--warm-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.levels < 5:
        parser.error("--levels must be at least 5")
    if args.generate:
        generate(args)
        return
    if args.child:
        measure(args)
        return
    if args.warm_child:
        measure_warm(args)
        return
    run_in_workdir(args.workdir, "drift-benchmark-", lambda workdir: report(args, workdir))


if __name__ == "__main__":
    main()
