"""Mutation testing of the code that decides money, policy and privacy, with mutmut.

Runs `mutmut run` on the functions named below (the configuration, including which tests run
against each mutant, is `[tool.mutmut]` in pyproject.toml), then prints every surviving mutant
and the figures as JSON: `mutants`, `killed`, `survived`, `mutation_score`, and the same per area.
`mutmut show <name>` prints the diff of a survivor; `mutmut browse` walks them.

    make mutation                       # the whole run (about 20 minutes on 2 cores)
    .venv/bin/python benchmarks/mutation.py --only "the rollback's choice"
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# What decides: the reconciliation that stops a ledger from being published, the decision built from
# the engine's answer (fail-closed, severities, version mismatch, input limits), the version a
# rollback returns to, the drift verdicts, and the keyed pseudonyms of request ids.
AREAS: dict[str, list[str]] = {
    "ledger reconciliation": ["rai_pipelines.costs.reconciliation.*"],
    "the decision": [
        "rai_pipelines.governance.decisions.*",
        "rai_pipelines.governance.rego.x_check_input__mutmut_*",
        "rai_pipelines.governance.rego.x_engine_safe__mutmut_*",
        "rai_pipelines.governance.rego.x_evaluate_decisions__mutmut_*",
        "rai_pipelines.governance.rego.x_version_mismatch__mutmut_*",
        "rai_pipelines.governance.rego.x__image_tag__mutmut_*",
        "rai_pipelines.governance.rego.xǁPolicyDecisionǁ*",
    ],
    "the rollback's choice": [
        "rai_pipelines.governance.rollback.x_choose_rollback_target__mutmut_*",
        "rai_pipelines.governance.rollback.x__pin_image__mutmut_*",
        "rai_pipelines.governance.rollback.x__image_repository__mutmut_*",
    ],
    "drift verdicts": [
        "rai_pipelines.monitoring.drift.x_corrected_threshold__mutmut_*",
        "rai_pipelines.monitoring.drift.x_ks_wasserstein__mutmut_*",
        "rai_pipelines.monitoring.drift.x_psi__mutmut_*",
        "rai_pipelines.monitoring.drift.x_jensen_shannon__mutmut_*",
        "rai_pipelines.monitoring.drift.x_numeric_drift__mutmut_*",
        "rai_pipelines.monitoring.drift.x_categorical_drift__mutmut_*",
        "rai_pipelines.monitoring.drift.xǁDriftDetectorǁdetect__mutmut_*",
        "rai_pipelines.monitoring.drift.xǁDriftResultǁ*",
    ],
    "pseudonymisation": ["rai_pipelines.monitoring.snapshots.x_pseudonymise__mutmut_*"],
}

# mutmut's exit codes (mutmut.stats.status_by_exit_code): a mutant that makes the tests fail, time
# out or crash is detected; one they pass on, or that no test runs, is not.
DETECTED = {1: "killed", 3: "killed", 36: "timeout", 24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout"}
DETECTED |= {-11: "segfault", -9: "segfault"}
UNDETECTED = {0: "survived", 5: "no tests", 33: "no tests"}


def results() -> dict[str, int | None]:
    """Every mutant's exit code, from the files mutmut keeps beside each mutated module."""
    codes: dict[str, int | None] = {}
    for meta in (ROOT / "mutants").rglob("*.py.meta"):
        codes.update(json.loads(meta.read_text())["exit_code_by_key"])
    return codes


def figures(codes: dict[str, int | None], patterns: list[str]) -> tuple[dict, list[str], list[str]]:
    names = sorted(n for n in codes if any(fnmatch.fnmatchcase(n, p) for p in patterns))
    detected = [n for n in names if codes[n] in DETECTED]
    survived = [n for n in names if codes[n] in UNDETECTED]
    unknown = [n for n in names if codes[n] not in DETECTED and codes[n] not in UNDETECTED]
    return (
        {
            "mutants": len(names),
            "killed": len(detected),
            "survived": len(survived),
            "not_run": len(unknown),
            "mutation_score": round(len(detected) / len(names), 3) if names else None,
        },
        survived,
        unknown,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=sorted(AREAS), action="append", help="mutate only this area")
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--report-only", action="store_true", help="print the figures of the last run")
    args = parser.parse_args()
    areas = {name: AREAS[name] for name in (args.only or AREAS)}
    patterns = [p for globs in areas.values() for p in globs]
    if not args.report_only:
        # A fresh copy each time: mutmut keeps results across runs and would report stale verdicts
        # for code or tests that changed since.
        shutil.rmtree(ROOT / "mutants", ignore_errors=True)
        mutmut = Path(sys.executable).with_name("mutmut")
        log = ROOT / "mutants.log"
        with log.open("w") as out:
            run = subprocess.run(
                [str(mutmut), "run", "--max-children", str(args.max_children), *patterns],
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        if run.returncode != 0:
            print(f"mutmut run failed with exit code {run.returncode}; its output is in {log}", file=sys.stderr)
            return run.returncode
    codes = results()
    if not codes:
        print("no mutmut results under mutants/: run without --report-only first", file=sys.stderr)
        return 2
    summary, survivors, unknown = figures(codes, patterns)
    for name in survivors:
        print(f"survived: {name}  (mutmut show {name})")
    for name in unknown:
        print(f"not run ({codes[name]}): {name}")
    summary["by_area"] = {area: figures(codes, globs)[0] for area, globs in areas.items()}
    print(json.dumps(summary, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
