"""The `rai-pipelines` command: the demo, the pre-deployment gate, policy and audit tools."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path

# What each command needs beyond the base install (the gate's): the `pipelines` extra.
PIPELINES_MODULES = ("dagster", "pyarrow", "pandas", "duckdb")


def _needs_pipelines(what: str) -> None:
    import importlib.util

    def absent(module: str) -> bool:
        try:
            return importlib.util.find_spec(module) is None
        except ImportError:  # a broken or blocked installation is as good as none
            return True

    missing = [m for m in PIPELINES_MODULES if absent(m)]
    if missing:
        raise _MissingExtra(
            f"{what} needs the pipelines install (missing {', '.join(missing)}): "
            "pip install 'rai-pipelines[pipelines]'; the base install runs the gate and the policy commands"
        )


class _MissingExtra(Exception):
    pass


def _demo(args) -> int:
    _needs_pipelines("rai-pipelines demo")
    from rai_pipelines.demo.run import run_demo

    result = run_demo(Path(args.home), daemon_timeout=args.timeout)
    failed = [run for run, status in result.rollback_runs if status != "SUCCESS"]
    return 1 if failed or not result.rollback_commits else 0


def _model_validate(args) -> int:
    """Check every model file of a registry folder as the code location reads it: 0 when all are
    valid, 1 naming each bad file and what is wrong, 2 when the folder is not there."""
    from rai_pipelines.core.errors import BadInputError
    from rai_pipelines.core.registry import load_registry_reporting

    try:
        specs, problems = load_registry_reporting(args.registry)
    except BadInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for spec in specs.values():
        features = len(spec.numeric_features) + len(spec.categorical_features)
        print(f"OK    {spec.name} ({spec.source}): {len(spec.versions)} version(s), {features} feature(s)")
    for problem in problems.values():
        print(f"ERROR {problem}")
    print(f"{len(specs)} valid, {len(problems)} invalid model file(s) in {args.registry}")
    return 1 if problems else 0


def _load_bundle(path: str):
    from rai_pipelines.governance.bundle import PolicyBundle
    from rai_pipelines.governance.rego import validate_bundle_compiles

    bundle = PolicyBundle.load(path)
    validate_bundle_compiles(bundle)
    return bundle


def _policy_test(args) -> int:
    """As `opa test -v [--coverage --threshold P]`: 0 when every test passes (and the coverage
    reaches the threshold), 1 when a test fails, 2 when the bundle cannot be tested or the coverage
    falls short."""
    from rai_pipelines.core.errors import PolicyError
    from rai_pipelines.governance.policy_tests import run_policy_tests

    try:
        report = run_policy_tests(_load_bundle(args.bundle), coverage=args.coverage or args.threshold is not None)
    except PolicyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not report.results:
        print("error: no test_* rules found", file=sys.stderr)
        return 2
    print(report.verbose_text())
    if args.coverage:
        print(json.dumps(report.coverage_document(), indent=2))
    if not report.passed:
        return 1
    if args.threshold is not None and report.coverage_percent() < args.threshold:
        print(
            f"Code coverage threshold not met: got {report.coverage_percent():.2f} instead of {args.threshold:.2f}",
            file=sys.stderr,
        )
        return 2
    return 0


def _policy_validate(args) -> int:
    from rai_pipelines.core.errors import PolicyError

    try:
        bundle = _load_bundle(args.bundle)
    except PolicyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    governance = bundle.data["governance"]
    print(f"valid: {len(bundle.policy_modules)} policy module(s), {len(bundle.test_modules)} test module(s)")
    print(f"  organisation thresholds: {governance['thresholds']}")
    print(f"  organisation severities: {governance['severity']}")
    for level in ("teams", "models"):
        for name, data in sorted(governance[level].items()):
            print(f"  {level[:-1]} {name} overrides: {data}")
    print(f"  digest {bundle.digest}" + (f", revision {bundle.revision}" if bundle.revision else ""))
    return 0


def _facts_export(args) -> int:
    """The governance facts the gate reads (`--facts`), from the lake the loop writes: an object keyed
    by model version with the latest day's facts of each (the policies' `data.ai_models`)."""
    _needs_pipelines("rai-pipelines facts export")
    from rai_pipelines.core.lake import Lake
    from rai_pipelines.governance.facts import ai_models_document, read_all_facts

    rows = read_all_facts(Lake(args.lake))
    if args.model:
        rows = [r for r in rows if r["model_name"] in args.model]
    if not rows:
        which = f" for {', '.join(args.model)}" if args.model else ""
        print(f"error: no governance facts{which} in {args.lake}", file=sys.stderr)
        return 2
    text = json.dumps(ai_models_document(rows), indent=2, sort_keys=True, default=str) + "\n"
    if args.out:
        out = Path(args.out)
        try:  # the folder is made if needed, and the file replaced whole or not at all
            out.parent.mkdir(parents=True, exist_ok=True)
            partial = out.with_name(f".{out.name}.partial")
            partial.write_text(text)
            partial.replace(out)
        except OSError as exc:
            print(f"error: cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        print(f"facts of {len({r['model_version'] for r in rows})} model versions written to {args.out}")
    else:
        sys.stdout.write(text)
    return 0


def _policy_suggest(args) -> int:
    _needs_pipelines("rai-pipelines policy suggest")
    from datetime import date

    from rai_pipelines.core.errors import RaiError
    from rai_pipelines.core.lake import Lake
    from rai_pipelines.governance.facts import read_all_facts
    from rai_pipelines.governance.suggestions import propose_branch, suggest_threshold_changes

    try:
        bundle = _load_bundle(args.bundle)
        rows = read_all_facts(Lake(args.lake))
        if args.days and rows:
            last = max(r["date"] for r in rows)
            cutoff = date.fromordinal(date.fromisoformat(last).toordinal() - args.days + 1).isoformat()
            rows = [r for r in rows if r["date"] >= cutoff]
        if not rows:
            print(f"error: no governance facts in {args.lake}", file=sys.stderr)
            return 2
        suggestions = suggest_threshold_changes(rows, bundle.data["governance"]["thresholds"])
        for s in suggestions:
            change = f"{s.current} -> {s.proposed}" if s.proposed is not None else f"{s.current} (no change proposed)"
            print(f"{s.key}: {change}\n  {s.rationale}")
        if not suggestions:
            print(f"no threshold change suggested from {len(rows)} facts rows")
            return 0
        if args.repo:
            from datetime import datetime, timezone

            stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d-%H%M%S")
            branch = args.branch or f"rai-pipelines/suggest/{stamp}"
            result = propose_branch(args.repo, branch, args.bundle_path, suggestions, args.workdir)
            if result:
                diff, sha = result
                print(f"\n{diff}\nproposed on branch {branch} (commit {sha}); nothing is merged")
    except RaiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _audit_verify(args) -> int:
    """0 when the chain verifies (and matches the anchor kept outside the file, when given); 1 with
    every problem named otherwise; 2 when there is no log."""
    from rai_pipelines.core.decision_log import DecisionLog

    log = DecisionLog(args.log)
    if not log.path.exists():
        print(f"error: no decision log at {log.path}", file=sys.stderr)
        return 2
    anchor = None
    if args.anchor:
        sequence, _, anchored = args.anchor.partition(":sha256:")
        if not sequence.isdigit() or not anchored:
            print("error: --anchor is SEQUENCE:sha256:DIGEST, as `audit verify` prints the head", file=sys.stderr)
            return 2
        anchor = (int(sequence), f"sha256:{anchored}")
    elif args.dagster:
        _needs_pipelines("audit verify --dagster")
        from rai_pipelines.defs.governance.audit import decision_log_anchor

        anchor = decision_log_anchor()
        if anchor is None:
            print("error: the Dagster instance holds no governance decision to anchor the log", file=sys.stderr)
            return 2
    problems = log.problems(anchor)
    if problems:
        print(f"TAMPERED: {log.path}")
        for problem in problems:
            print(f"  - {problem}")
        return 1
    head = log.head()
    checked = f", and against the anchor {anchor[0]}:{anchor[1]}" if anchor else ""
    print(f"intact: {head[0] if head else 0} record(s) in {log.path}, hash chain verified{checked}")
    if head:
        print(f"head (keep it outside the log to detect truncation): {head[0]}:{head[1]}")
    return 0


def _gate(args) -> int:
    from rai_pipelines.governance.gate import EXIT_ERROR

    try:
        return _run_gate(args)
    except _GateRefused as refused:
        return _refuse(args, str(refused), refused.inputs)
    except Exception as exc:  # the gate fails closed: anything unexpected is an error, never a pass
        _refuse(args, f"the gate could not decide: {type(exc).__name__}: {exc}", list(args.manifests))
        return EXIT_ERROR


class _GateRefused(Exception):
    """The gate cannot decide with what it was given (exit 2, reports written)."""

    def __init__(self, message: str, inputs: list[str]):
        super().__init__(message)
        self.inputs = inputs


def _refuse(args, message: str, inputs: list[str]) -> int:
    """Exit 2 with the reason on stderr and in the JUnit and SARIF files, which CI uploads whatever
    the outcome: a step that reads them must never find them missing."""
    from rai_pipelines.governance.gate import EXIT_ERROR, GateResult, write_junit, write_sarif

    print(f"ERROR - {message}", file=sys.stderr)
    failed = GateResult(errors=[message], inputs=inputs)
    for writer, path in ((write_junit, args.junit), (write_sarif, args.sarif)):
        if path:
            try:
                writer(failed, path)
            except OSError as exc:
                print(f"ERROR - could not write {path}: {exc}", file=sys.stderr)
    return EXIT_ERROR


def _run_gate(args) -> int:
    from rai_pipelines.core.decision_log import DecisionLog
    from rai_pipelines.core.errors import PolicyError, RaiError
    from rai_pipelines.core.registry import load_registry
    from rai_pipelines.governance.gate import report_text, run_gate, write_junit, write_sarif
    from rai_pipelines.governance.rego import make_engine

    try:
        bundle = _load_bundle(args.bundle).with_registry(load_registry(args.registry))
    except (PolicyError, RaiError) as exc:
        raise _GateRefused(str(exc), [args.bundle]) from exc
    log = None if args.no_decision_log else DecisionLog(args.decision_log)
    if not args.facts and not args.validation_set:
        raise _GateRefused(
            "give the candidate's facts (--facts) or a validation set to compute them from", list(args.manifests)
        )
    candidate = None
    if args.validation_set:
        try:
            _needs_pipelines("gate --validation-set")
        except _MissingExtra as exc:
            raise _GateRefused(str(exc), [args.validation_set]) from exc
        from rai_pipelines.costs.serving_prices import CatalogueEndpoints, Catalogues, serving_price
        from rai_pipelines.governance.candidate_facts import candidate_facts, read_validation_set

        try:
            if not (args.model and args.candidate_version and args.candidate_score_column):
                raise RaiError("--validation-set needs --model, --candidate-version and --candidate-score-column")
            specs = load_registry(args.registry)
            if args.model not in specs:
                raise RaiError(f"model {args.model} is not in the registry {args.registry}")
            spec = specs[args.model]
            catalogues = Catalogues(
                CatalogueEndpoints(args.aws_pricing_endpoint or None, args.gcp_catalog_endpoint or None)
            )
            serving = spec.version(args.candidate_version).serving
            where = f"{spec.name} {args.candidate_version}"
            candidate = candidate_facts(
                spec,
                read_validation_set(args.validation_set),
                args.candidate_version,
                args.candidate_score_column,
                lambda: serving_price(serving, where, catalogues, None, date.today(), 0).price,
                args.daily_inferences,
                args.baseline_score_column,
                source=args.validation_set,
            )
        except RaiError as exc:
            raise _GateRefused(str(exc), [args.validation_set]) from exc
        print(f"candidate facts from {args.validation_set}: {json.dumps(candidate, sort_keys=True)}")
    result = run_gate(make_engine(args.engine), bundle, args.manifests, args.facts, log, candidate=candidate)
    print(report_text(result, bundle))
    if args.junit:
        write_junit(result, args.junit)
    if args.sarif:
        write_sarif(result, args.sarif)
    return result.exit_code


def _rollback(args) -> int:
    """What the rollback job would do for a violation, shown and not pushed: the target it would
    push to, the commit message and the diff. 0 when a rollback is planned (or nothing is left to
    do), 1 when it would be refused (no compliant version), 2 on bad input or an unreachable remote."""
    if not args.dry_run:
        print(
            "error: from the command line the rollback only runs as --dry-run; the rollback that pushes is the "
            "gitops_rollback job (launched by the policy sensor or from the Dagster UI), so that it is in the "
            "decision log",
            file=sys.stderr,
        )
        return 2
    _needs_pipelines("rai-pipelines rollback")
    import os

    from rai_pipelines.core.errors import RaiError
    from rai_pipelines.core.lake import Lake
    from rai_pipelines.core.registry import load_registry
    from rai_pipelines.gitops.git import GitOpsCheckout, redact
    from rai_pipelines.governance.facts import read_all_facts
    from rai_pipelines.governance.rego import make_engine
    from rai_pipelines.governance.rollback import NoCompliantVersion, review_branch, rollback_model

    try:
        specs = load_registry(args.registry)
        if args.app not in specs:
            raise RaiError(f"app {args.app!r} is not a model in the registry {args.registry}")
        bundle = _load_bundle(args.bundle)
        facts = read_all_facts(Lake(args.lake))
        token = os.environ.get("RAI_GITOPS_TOKEN") or None
        branch = review_branch(args.app, args.bad_version, args.overlay) if args.mode == "branch" else None
        with GitOpsCheckout(args.remote, args.branch, args.workdir, token=token) as checkout:
            result = rollback_model(
                checkout,
                specs[args.app],
                args.overlay,
                args.deployment or args.app,
                args.bad_version,
                args.decision_id,
                make_engine(args.engine),
                bundle,
                facts,
                review_branch=branch,
                dry_run=True,
            )
    except NoCompliantVersion as exc:
        print(f"refused: {exc}")
        return 1
    except RaiError as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return 2
    if result.status != "dry_run":
        print(f"nothing to do: {args.app} {args.bad_version} in {args.overlay}: {result.status.replace('_', ' ')}")
        return 0
    print(f"dry run: nothing pushed. Would push to {redact(args.remote)} branch {result.branch}")
    print(f"restores {result.target_version} (candidates considered: {result.considered})\n")
    print("commit message:\n" + "\n".join(f"    {line}" for line in result.commit_message.splitlines()))
    print("\ndiff:\n" + result.diff)
    return 0


def main(argv: list[str] | None = None) -> int:
    from rai_pipelines.settings import Settings

    settings = Settings.from_env()
    parser = argparse.ArgumentParser(prog="rai-pipelines", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="build a local world from real data and run the whole loop through Dagster")
    demo.add_argument("--home", default=".rai-demo", help="folder for the demo world (default: .rai-demo)")
    demo.add_argument("--timeout", type=float, default=300, help="seconds to wait for the rollback runs")
    demo.set_defaults(func=_demo)

    gate = sub.add_parser("gate", help="check candidate manifests against the policies before they ship (CI/CD)")
    gate.add_argument("manifests", nargs="+", help="YAML files, or kustomize directories to render")
    gate.add_argument("--facts", help="governance facts (JSON): {version: facts} or a list of rows")
    gate.add_argument("--validation-set", help="Parquet or CSV to compute the candidate's facts from")
    gate.add_argument("--model", help="the candidate's model (registry name), with --validation-set")
    gate.add_argument("--candidate-version", help="the candidate's version, declared in the registry")
    gate.add_argument("--candidate-score-column", help="the validation set's column of candidate scores")
    gate.add_argument("--baseline-score-column", help="the column of the deployed version's scores")
    gate.add_argument(
        "--daily-inferences",
        type=int,
        help="expected inferences a day, for the cost estimate (default: the registry's expected_inferences_per_day)",
    )
    gate.add_argument(
        "--aws-pricing-endpoint",
        default=settings.aws_pricing_endpoint,
        help="AWS Price List API endpoint for the cost estimate (default: AWS's own; RAI_AWS_PRICING_ENDPOINT)",
    )
    gate.add_argument(
        "--gcp-catalog-endpoint",
        default=settings.gcp_catalog_endpoint,
        help="Cloud Billing Catalog API endpoint (default: Google's own; RAI_GCP_CATALOG_ENDPOINT)",
    )
    gate.add_argument("--registry", default=settings.model_registry_dir, help="model registry directory")
    gate.add_argument("--bundle", default=settings.policy_dir, help="policy bundle directory")
    gate.add_argument("--junit", help="write JUnit XML here")
    gate.add_argument("--sarif", help="write SARIF 2.1.0 here")
    gate.add_argument("--decision-log", default=str(Path(settings.home) / "decision_log"))
    gate.add_argument("--no-decision-log", action="store_true", help="do not append the decisions to a log")
    gate.add_argument(
        "--engine", choices=("opa", "regopy"), default=settings.policy_engine, help="policy engine (default: OPA's)"
    )
    gate.set_defaults(func=_gate)

    policy = sub.add_parser("policy", help="policy bundle commands")
    policy_sub = policy.add_subparsers(dest="policy_command", required=True)
    test = policy_sub.add_parser("test", help="run the bundle's test_* rules on OPA, as `opa test -v` does")
    test.add_argument("bundle", nargs="?", default=settings.policy_dir)
    test.add_argument("--coverage", action="store_true", help="print OPA's coverage report per file and line")
    test.add_argument("--threshold", type=float, help="fail when the coverage is below this percentage")
    test.set_defaults(func=_policy_test)
    validate = policy_sub.add_parser("validate", help="check syntax, data conflicts and forbidden built-ins")
    validate.add_argument("bundle", nargs="?", default=settings.policy_dir)
    validate.set_defaults(func=_policy_validate)

    suggest = policy_sub.add_parser("suggest", help="propose threshold changes from the governance facts history")
    suggest.add_argument("--bundle", default=settings.policy_dir, help="the policy bundle whose thresholds to review")
    suggest.add_argument("--lake", default=settings.lake_root, help="lake holding governance_facts")
    suggest.add_argument("--days", type=int, default=30, help="look at the last N days of facts")
    suggest.add_argument("--repo", help="policy repository (Git remote) to push the proposal branch to")
    suggest.add_argument("--bundle-path", default="policies", help="the bundle's folder inside that repository")
    suggest.add_argument("--branch", help="branch name (default rai-pipelines/suggest/<UTC time>)")
    suggest.add_argument("--workdir", default=settings.workdir)
    suggest.set_defaults(func=_policy_suggest)

    model = sub.add_parser("model", help="model registry commands")
    model_sub = model.add_subparsers(dest="model_command", required=True)
    model_check = model_sub.add_parser("validate", help="check every model file of the registry")
    model_check.add_argument("registry", nargs="?", default=settings.model_registry_dir)
    model_check.set_defaults(func=_model_validate)

    facts = sub.add_parser("facts", help="governance facts commands")
    facts_sub = facts.add_subparsers(dest="facts_command", required=True)
    export = facts_sub.add_parser("export", help="write the latest governance facts of each version, for gate --facts")
    export.add_argument("--lake", default=settings.lake_root, help="lake holding governance_facts")
    export.add_argument("--model", action="append", help="only this model (repeatable)")
    export.add_argument("--out", help="write here (default: standard output)")
    export.set_defaults(func=_facts_export)

    rollback = sub.add_parser(
        "rollback", help="show what the GitOps rollback of a violation would commit and push (--dry-run)"
    )
    rollback.add_argument(
        "--dry-run", action="store_true", help="print the diff, commit message and target; push nothing"
    )
    rollback.add_argument("--app", required=True, help="the model (registry name) to roll back")
    rollback.add_argument("--bad-version", required=True, help="the deployed version that violates policy")
    rollback.add_argument("--overlay", required=True, help="the deployment's overlay inside the GitOps repository")
    rollback.add_argument("--deployment", help="the Deployment's name (default: the app's name)")
    rollback.add_argument(
        "--mode", choices=("push", "branch"), default="push", help="the GitOps branch or a review branch"
    )
    rollback.add_argument("--decision-id", default="dry-run", help="the decision the commit would name")
    rollback.add_argument("--remote", default=settings.gitops_remote, help="GitOps repository (RAI_GITOPS_REMOTE)")
    rollback.add_argument("--branch", default=settings.gitops_branch, help="its environment branch (RAI_GITOPS_BRANCH)")
    rollback.add_argument("--lake", default=settings.lake_root, help="lake holding governance_facts")
    rollback.add_argument("--registry", default=settings.model_registry_dir, help="model registry directory")
    rollback.add_argument("--bundle", default=settings.policy_dir, help="policy bundle directory")
    rollback.add_argument("--workdir", default=settings.workdir, help="where the throw-away checkout is made")
    rollback.add_argument("--engine", choices=("opa", "regopy"), default=settings.policy_engine)
    rollback.set_defaults(func=_rollback)

    audit = sub.add_parser("audit", help="decision log commands")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser("verify", help="prove the decision log's hash chain is intact")
    verify.add_argument("--log", default=str(Path(settings.home) / "decision_log"), help="decision log directory")
    anchor = verify.add_mutually_exclusive_group()
    anchor.add_argument("--anchor", help="SEQUENCE:sha256:DIGEST of the last record, kept outside the log")
    anchor.add_argument(
        "--dagster", action="store_true", help="take the anchor from the Dagster instance (DAGSTER_HOME)"
    )
    verify.set_defaults(func=_audit_verify)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except _MissingExtra as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
