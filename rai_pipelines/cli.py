"""The `rai-pipelines` command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _demo(args) -> int:
    from rai_pipelines.demo.run import run_demo

    result = run_demo(Path(args.home), daemon_timeout=args.timeout)
    failed = [run for run, status in result.rollback_runs if status != "SUCCESS"]
    return 1 if failed or not result.rollback_commits else 0


def _policy_test(args) -> int:
    from rai_pipelines.errors import PolicyError
    from rai_pipelines.policy import PolicyBundle, run_policy_tests, validate_bundle_compiles

    try:
        bundle = PolicyBundle.load(args.bundle)
        validate_bundle_compiles(bundle)
        results = run_policy_tests(bundle)
    except PolicyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for r in results:
        print(f"{'PASS' if r.passed else 'FAIL'}: {r.file}: data.{r.package}.{r.name}")
    passed = sum(r.passed for r in results)
    print(
        f"{'-' * 60}\nPASS: {passed}/{len(results)}"
        + (f"\nFAIL: {len(results) - passed}/{len(results)}" if passed < len(results) else "")
    )
    if not results:
        print("error: no test_* rules found", file=sys.stderr)
        return 2
    return 0 if passed == len(results) else 1


def main(argv: list[str] | None = None) -> int:
    from rai_pipelines.settings import Settings

    parser = argparse.ArgumentParser(prog="rai-pipelines", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="build a local world from real data and run the whole loop through Dagster")
    demo.add_argument("--home", default=".rai-demo", help="folder for the demo world (default: .rai-demo)")
    demo.add_argument("--timeout", type=float, default=300, help="seconds to wait for the rollback runs")
    demo.set_defaults(func=_demo)
    policy = sub.add_parser("policy", help="policy bundle commands")
    policy_sub = policy.add_subparsers(dest="policy_command", required=True)
    test = policy_sub.add_parser("test", help="run the bundle's *_test.rego files, as `opa test` does")
    test.add_argument("bundle", nargs="?", default=Settings.from_env().policy_dir)
    test.set_defaults(func=_policy_test)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
