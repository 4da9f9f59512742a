"""`rai-pipelines demo`: build the local world, then run the whole loop through Dagster on a
persistent DAGSTER_HOME — daily partitions materialised as runs, the policy sensor ticking in the
Dagster daemon, the rollback run it launches — and print what happened."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rai_pipelines.core import datasets
from rai_pipelines.settings import PROJECT_ROOT

TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}


@dataclass
class DemoResult:
    world_home: Path
    dagster_home: Path
    gitops_remote: Path
    daily_runs: list[str] = field(default_factory=list)
    rollback_runs: list[tuple[str, str]] = field(default_factory=list)  # (run id, status)
    rollback_commits: list[str] = field(default_factory=list)


def _prepare_environment(home: Path) -> Path:
    dagster_home = home / "dagster_home"
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    os.environ["RAI_HOME"] = str(home)
    return dagster_home


def run_demo(home: Path, say: Callable[[str], None] = print, daemon_timeout: float = 300) -> DemoResult:
    home = home.resolve()
    from rai_pipelines.core.registry import load_registry
    from rai_pipelines.demo.world import build_world, project_configuration
    from rai_pipelines.settings import Settings

    for name, value in project_configuration().items():  # unless the caller points elsewhere
        os.environ.setdefault(name, value)
    specs = list(load_registry(Settings.from_env().model_registry_dir).values())
    key_file = home / "secrets" / "pseudonymisation.key"

    def key() -> bytes:
        from rai_pipelines.defs.resources import LakeResource

        return LakeResource(
            root=str(home / "lake"),
            decision_log_dir=str(home / "decision_log"),
            pseudonymisation_key_file=str(key_file),
            create_missing_key=True,
        ).pseudonymisation_key()

    say(f"Building the demo world in {home} (real CUR, car-loan and ACS traffic, GitOps repository) ...")
    world = build_world(home, specs, key)
    os.environ.update(world.env())
    # The demo's AWS Price List on loopback: the pipeline prices the declared serving resources through
    # boto3 from it (and caches the prices in the lake, which `dagster dev` then reads).
    from rai_pipelines.demo.catalogue_servers import demo_aws_catalogue

    catalogue = demo_aws_catalogue()
    os.environ.setdefault("RAI_AWS_PRICING_ENDPOINT", catalogue.endpoint)
    try:
        return _run_loop(home, world, specs, say, daemon_timeout)
    finally:
        catalogue.stop()


def _run_loop(home: Path, world, specs, say, daemon_timeout: float) -> DemoResult:
    from rai_pipelines.settings import Settings

    dagster_home = _prepare_environment(home)
    dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    result = DemoResult(home, dagster_home, world.gitops_remote)

    import dagster as dg

    from rai_pipelines.definitions import build_definitions

    defs = build_definitions(Settings.from_env())
    job = defs.resolve_job_def("daily_governance_job")
    with dg.DagsterInstance.get() as instance:
        for day in world.days:
            run = job.execute_in_process(
                partition_key=day.isoformat(),
                instance=instance,
                raise_on_error=False,
                run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            )
            if not run.success:
                failures = [e.message for e in run.all_events if e.is_failure]
                raise RuntimeError(f"daily_governance_job failed for {day}: {failures[:3]}")
            result.daily_runs.append(run.run_id)
            say(f"  {day}: run {run.run_id[:8]} materialised the ledger, snapshots, reports and facts")
        _print_day_summaries(world, specs, say)
        _print_finops(world, say)

        say("Starting the Dagster daemon: the policy sensor ticks and launches the rollback runs ...")
        _run_daemon_until_rollbacks_finish(world, instance, daemon_timeout, result, say)

    _print_rollbacks(world, result, say)
    # dagster dev reads a .env file in its working directory: the UI then sees the demo world.
    ui_env = {**world.env(), "RAI_AWS_PRICING_ENDPOINT": os.environ["RAI_AWS_PRICING_ENDPOINT"]}
    (dagster_home / ".env").write_text("".join(f"{k}={v}\n" for k, v in ui_env.items()))
    dagster = Path(sys.executable).parent / "dagster"
    cli = Path(sys.executable).parent / "rai-pipelines"
    say(
        f"\nThe decision log's hash chain, and threshold changes the demo's facts suggest:\n"
        f"  {cli} audit verify --log {home / 'decision_log'}\n"
        f"  {cli} policy suggest --lake {world.lake_root} --bundle {PROJECT_ROOT / 'policies'}\n"
        f"The Dagster UI shows the runs, materialisations and sensor ticks:\n"
        f"  cd {dagster_home} && DAGSTER_HOME=$PWD {dagster} dev -w {PROJECT_ROOT / 'workspace.yaml'}"
    )
    return result


def _print_day_summaries(world, specs, say) -> None:
    from rai_pipelines.core.lake import Lake

    lake = Lake(str(world.lake_root))
    say("\nCost ledger (FOCUS 1.3), per day:")
    for day in world.days:
        ledger = lake.read_table(datasets.COST_LEDGER, {"date": day.isoformat()}).to_pylist()
        total = sum(r["BilledCost"] for r in ledger)
        tagged = sum(r["EffectiveCost"] for r in ledger if r["x_ModelName"])
        providers = sorted({r["x_SourceUri"].rsplit("/", 1)[-1] for r in ledger})
        say(
            f"  {day}: {len(ledger):5d} rows, billed {total:10.4f} USD, model-attributed {tagged:9.4f} USD "
            f"from {', '.join(providers)}"
        )
    say("\nGovernance facts (drift share, fairness score [95% interval], ROC AUC of labelled rows, cost), per day:")
    from rai_pipelines.governance.facts import read_all_facts

    for row in read_all_facts(lake):
        fairness = f"{row['fairness_score']:.3f}" if row["fairness_score"] is not None else "  n/a"
        if row["fairness_score_ci_upper"] is not None:
            fairness += f" [{row['fairness_score_ci_lower']:.3f}, {row['fairness_score_ci_upper']:.3f}]"
        auc = f"{row['roc_auc']:.3f}" if row["roc_auc"] is not None else "n/a"
        drifted = ",".join(row["drifted_features"]) or "-"
        explained = ""
        if row.get("explanation_fidelity") is not None:
            moved = ",".join(row["attribution_drifted_features"]) or "-"
            explained = f" attributions moved ({moved}, fidelity {row['explanation_fidelity']:.2f})"
        say(
            f"  {row['date']} {row['model_name']:<24} {row['model_version']:<6} n={row['inference_count']:<6} "
            f"fairness={fairness} drift_share={row['drift_share']:.2f} ({drifted}){explained} auc={auc} "
            f"cost/inference={row['cost_per_inference_usd']:.5f} USD"
        )


def _print_finops(world, say) -> None:
    """The last day's FinOps reports: open cost anomalies with their root cause, budgets, and the
    recommendations pushed as branches of the GitOps repository (never merged)."""
    from rai_pipelines.core.lake import Lake

    lake, last = Lake(str(world.lake_root)), {"date": world.days[-1].isoformat()}
    anomalies = lake.read_json(datasets.COST_ANOMALIES, last, "report.json")
    say(f"\nCost anomalies seen on {world.days[-1]} (per model, team, service, account):")
    for event in anomalies["events"]:
        causes = "; ".join(
            f"{c['dimension']}={c['value']} {c['impact']:+.2f} ({c['share']:.0%})" for c in event["root_causes"][:2]
        )
        scope = ", ".join(f"{k}={v}" for k, v in event["scope"].items())
        relative = "new" if event["relative_impact"] is None else f"{event['relative_impact']:+.0%}"
        say(
            f"  {scope}: {event['start']}..{event['last_day']} {event['status']} {event['severity']}, impact "
            f"{event['impact']:+.2f} {event['currency']} ({relative}); root cause {causes}"
        )
    if not anomalies["events"]:
        say("  none")
    forecast = lake.read_json(datasets.COST_FORECAST, last, "report.json")
    say("Budgets (burn rate 1 = on track; month-end forecast with its 80% interval):")
    for kind, statuses in forecast["budgets"].items():
        for name, status in statuses.items():
            if "burn_rate" in status:
                say(
                    f"  {kind} {name}: {status['spend_to_date']:.2f} of {status['budget']:.0f} {status['currency']} "
                    f"spent, burn rate {status['burn_rate']:.2f}, month end {status['forecast_total']:.0f}, "
                    f"overrun on {status['projected_overrun_date'] or '-'}"
                )
    recommendations = lake.read_json(datasets.FINOPS_RECOMMENDATIONS, last, "report.json")
    say("FinOps recommendations (each a branch of the GitOps repository, for review):")
    for rec in recommendations["recommendations"]:
        proposal = rec.get("proposal") or {}
        where = proposal.get("branch") or proposal.get("note", "-")
        say(
            f"  {rec['kind']} {rec['model']} {rec['version']}: {rec['target_field']} {rec['current']} -> "
            f"{rec['proposed']}, saves {rec['monthly_savings']} {rec['currency']}/month: {where}"
        )
    if not recommendations["recommendations"]:
        say("  none")


def _run_daemon_until_rollbacks_finish(world, instance, timeout: float, result: DemoResult, say) -> None:
    import dagster as dg

    from rai_pipelines.core.decision_log import DecisionLog

    log = DecisionLog(world.home / "decision_log")
    env = {**os.environ}
    daemon_log = open(world.home / "dagster-daemon.log", "w")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "dagster._daemon", "run", "-w", str(PROJECT_ROOT / "workspace.yaml")],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=daemon_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if daemon.poll() is not None:
                raise RuntimeError(f"the Dagster daemon exited early; see {world.home / 'dagster-daemon.log'}")
            decisions = [r for r in log.records() if r.get("kind") != "remediation"]
            requested = [r for r in decisions if r["action"]["type"] == "rollback_requested"]
            runs = instance.get_run_records(dg.RunsFilter(job_name="gitops_rollback_job"))
            finished = [r for r in runs if r.dagster_run.status.value in TERMINAL]
            if decisions and len(finished) >= len(requested) and len(runs) >= len(requested):
                for violation in requested:
                    say(
                        f"  policy sensor: {violation['app']} {violation['model_version']} denied: "
                        f"{'; '.join(violation['result']['deny'])} (decision {violation['decision_id']})"
                    )
                for decision in decisions:
                    if not decision["action"]["type"] == "rollback_requested":
                        say(f"  policy sensor: {decision['app']} {decision.get('model_version')} allowed")
                result.rollback_runs = [(r.dagster_run.run_id, r.dagster_run.status.value) for r in runs]
                return
            time.sleep(2)
        raise TimeoutError(f"no rollback finished within {timeout:.0f} s; see {world.home / 'dagster-daemon.log'}")
    finally:
        if daemon.poll() is None:
            os.killpg(daemon.pid, signal.SIGTERM)
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
        daemon_log.close()


def _print_rollbacks(world, result: DemoResult, say) -> None:
    from rai_pipelines.core.decision_log import DecisionLog
    from rai_pipelines.gitops.git import run_git

    for run_id, status in result.rollback_runs:
        say(f"  rollback run {run_id[:8]}: {status}")
    remediations = [r for r in DecisionLog(world.home / "decision_log").records() if r.get("kind") == "remediation"]
    say("\nGitOps repository log:")
    say(run_git(["--git-dir", str(world.gitops_remote), "log", "--format=  %h %ad %s", "--date=short"]).rstrip())
    for record in remediations:
        action = record["action"]
        if action.get("commit"):
            body = run_git(["--git-dir", str(world.gitops_remote), "log", "-1", "--format=%B", action["commit"]])
            say(
                f"\n{record['app']}: {record['model_version']} -> {action['restored_version']}\n"
                + "\n".join("    " + line for line in body.strip().splitlines())
            )
            result.rollback_commits.append(action["commit"])
        else:
            say(f"\n{record['app']}: {action['type']}: {json.dumps(action)[:300]}")
    say("")
    for sha in result.rollback_commits:
        say(f"rollback commit {sha} in {world.gitops_remote}")
