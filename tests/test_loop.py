"""The loop through Dagster: the daily job over two real days, the reconciliation check, the
governance facts, the policy sensor (build_sensor_context) and the rollback job pushing to a bare
repository served by `git daemon` on loopback."""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import shutil
from decimal import Decimal

import dagster as dg
import pyarrow as pa
import pytest

from rai_pipelines.core.decision_log import DecisionLog
from rai_pipelines.core.lake import Lake
from rai_pipelines.costs.reconciliation import reconcile
from rai_pipelines.definitions import build_definitions
from rai_pipelines.demo.catalogue_servers import demo_ec2_rate
from rai_pipelines.gitops.git import GitOpsCheckout, remote_head, run_git
from rai_pipelines.gitops.render import kustomize_render
from tests.conftest import LOOP_DAYS, make_world, settings_for

DAY1, DAY2 = (d.isoformat() for d in LOOP_DAYS)
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@pytest.fixture(scope="module")
def loop(git_daemon, specs):
    world = make_world(git_daemon.base / "loop-world", specs)
    url = git_daemon.url(world.gitops_remote)
    settings = settings_for(world)
    settings = type(settings)(**{**vars(settings), "gitops_remote": url})
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        job = defs.resolve_job_def("daily_governance_job")
        runs = [job.execute_in_process(partition_key=d, instance=instance, run_config=QUIET) for d in (DAY1, DAY2)]
        yield {
            "world": world,
            "url": url,
            "defs": defs,
            "instance": instance,
            "runs": runs,
            "lake": Lake(str(world.lake_root)),
            "log": DecisionLog(world.home / "decision_log"),
        }


def _facts(loop) -> dict[tuple[str, str], dict]:
    table = loop["lake"].read_dataset("governance_facts")
    return {(r["model_name"], r["model_version"]): r for r in table.to_pylist()}


def _evaluate(loop, cursor=None):
    defs = loop["defs"]
    sensor = defs.resolve_sensor_def("governance_policy_sensor")
    context = dg.build_sensor_context(
        instance=loop["instance"], cursor=cursor, definitions=defs, resources=defs.resources
    )
    return sensor.evaluate_tick(context)


def test_daily_runs_succeed_and_the_ledger_reconciles(loop):
    assert all(run.success for run in loop["runs"])
    for run in loop["runs"]:
        checks = {(c.asset_key.to_user_string(), c.check_name): c.passed for c in run.get_asset_check_evaluations()}
        assert checks[("cost_ledger", "reconciles_with_export")] is True
        assert checks[("cost_ledger", "focus_conformance")] is True
        for model in ("credit_scoring_ai", "employment_screening_ai"):
            assert checks[(f"{model}/feature_snapshots", "snapshot_is_complete")] is True
            assert (f"{model}/feature_snapshots", "snapshot_matches_reference") in checks


def test_ledger_attributes_serving_cost_to_model_versions(loop, specs):
    ledger = loop["lake"].read_table("cost_ledger", {"date": DAY2}).to_pylist()
    by_version: dict[tuple, Decimal] = {}
    for row in ledger:
        if row["x_ModelName"]:
            key = (row["x_ModelName"], row["x_ModelVersion"])
            by_version[key] = by_version.get(key, Decimal(0)) + row["EffectiveCost"]
    gpu = specs["credit-scoring-ai"].versions["2.0.0"].serving
    rate = Decimal(str(demo_ec2_rate(gpu.instance_type)))  # the demo bills at its catalogue's rate
    assert by_version[("credit-scoring-ai", "2.0.0")] == rate * 24 * gpu.replicas
    untagged = [r for r in ledger if r["x_ModelName"] is None]
    assert {r["x_SourceUri"].rsplit("/", 1)[-1] for r in untagged} == {
        "rai-cur-1.csv.gz",
        "rai-cur-00001.snappy.parquet",
    }


def test_governance_facts_are_computed_from_data(loop, specs):
    from rai_pipelines.monitoring.lake_reads import report_json

    facts = _facts(loop)
    assert set(facts) == {
        ("credit-scoring-ai", "1.4.2"),
        ("credit-scoring-ai", "2.0.0"),
        ("employment-screening-ai", "3.1.0"),
        ("employment-screening-ai", "3.2.0"),
    }
    v1, v2 = facts[("credit-scoring-ai", "1.4.2")], facts[("credit-scoring-ai", "2.0.0")]
    assert v1["estimated_cost_per_inference_usd"] < 0.005 < v2["estimated_cost_per_inference_usd"]
    # from the bill and the traffic themselves: the ledger's effective cost tagged 2.0.0 that day, over
    # the requests 2.0.0 served in that day's inference log
    day_ledger = loop["lake"].read_table("cost_ledger", {"date": v2["date"]}).to_pylist()
    billed = sum(
        (
            r["EffectiveCost"]
            for r in day_ledger
            if (r["x_ModelName"], r["x_ModelVersion"]) == ("credit-scoring-ai", "2.0.0")
        ),
        Decimal(0),
    )
    log = loop["lake"].read_table("inference_logs", {"model": "credit-scoring-ai", "date": v2["date"]})
    served = log.column("model_version").to_pylist().count("2.0.0")
    assert billed > 0 and v2["inference_count"] == served
    # allocated: its own tagged cost, and its share of the EKS control plane by the day's inferences
    summary = {
        (r["model_name"], r["model_version"]): r
        for r in loop["lake"].read_table("model_cost_summary", {"date": v2["date"]}).to_pylist()
    }
    credit = summary[("credit-scoring-ai", "2.0.0")]
    assert credit["direct_cost"] == billed
    control_plane = Decimal("0.10") * 24
    served_that_day = sum(r["inferences"] for r in summary.values())
    assert float(credit["shared_cost"]) == pytest.approx(float(control_plane) * served / served_that_day, abs=1e-9)
    assert v2["cost_per_inference_usd"] == pytest.approx(float(credit["total_cost"]) / served)
    assert v1["fairness_score"] is None  # the car-loan data has no protected attribute
    e1, e2 = facts[("employment-screening-ai", "3.1.0")], facts[("employment-screening-ai", "3.2.0")]
    assert e1["fairness_score"] > 0.8 > e2["fairness_score"]
    assert e2["fairness_score_ci_lower"] <= e2["fairness_score"] <= e2["fairness_score_ci_upper"] < 0.8
    assert e1["equalized_odds_ratio"] is None  # the labels of these days have not arrived yet
    assert v2["roc_auc"] is None and 0.9 < v2["estimated_roc_auc"] < 1  # estimated until they do (CBPE)
    drift = report_json(loop["lake"], "drift_report", specs["credit-scoring-ai"], v2["date"])["versions"]["2.0.0"]
    assert v2["drift_max_effect_size"] == drift["max_effect_size"] > 0  # the day's report, carried over
    assert v2["prediction_drift_effect_size"] == drift["prediction_drift_effect_size"] > 0
    assert v2["drifted_features"] == drift["drifted_features"] and v2["drift_share"] == drift["drift_share"]
    assert 0.4 < v2["drift_classifier_auc"] < 1 and e2["drift_classifier_auc"] is None  # declared for credit only
    # explanations, declared for credit only (the demo's days here precede the car-loan change)
    explained = report_json(loop["lake"], "explanation_report", specs["credit-scoring-ai"], v2["date"])["versions"]
    assert v2["explanation_fidelity"] == explained["2.0.0"]["fidelity"] >= 0.8 and v1["explanation_fidelity"] >= 0.8
    assert v2["attribution_drifted_features"] == explained["2.0.0"]["drifted_features"] == []
    assert explained["2.0.0"]["additivity_error"] < 1e-6
    assert e2["explanation_fidelity"] is None and e2["attribution_drifted_features"] == []
    assert e2["fairness_worst_attribute"] == "SEX"
    assert set(json.loads(e2["fairness_by_attribute"])) == {"SEX", "RAC1P", "SEX&RAC1P"}
    assert all(r["source_run_ids"] for r in facts.values())
    assert {r["serving_hours"] for r in facts.values()} == {24}  # the demo switches versions at midnight
    # two m5.large at the catalogue's 0.107 USD/h, priced through boto3 from the loopback Price List
    assert v1["declared_daily_cost_usd"] == pytest.approx(0.107 * 2 * 24)
    assert v1["catalogue_price_age_days"] == 0


def test_serving_hours_charge_each_version_for_its_own_part_of_the_day():
    import pandas as pd

    from rai_pipelines.governance.facts import serving_hours

    day = pd.Timestamp("2023-11-06", tz="UTC")
    morning = pd.Series([day + pd.Timedelta(minutes=m) for m in range(0, 14 * 60, 7)])
    evening = pd.Series([day + pd.Timedelta(hours=14, minutes=m) for m in range(0, 10 * 60 - 1, 7)])
    assert (serving_hours(morning.min(), morning.max()), serving_hours(evening.min(), evening.max())) == (14, 10)
    assert serving_hours(day, day) == 1


def _billed_by_source(ledger):
    from rai_pipelines.costs.ledger import LedgerSummary

    summary = LedgerSummary()
    summary.add(ledger)
    return summary.billed_by_source


def test_reconciliation_fails_when_the_ledger_disagrees_with_the_export(loop):
    sources = loop["defs"].resources["billing"].read_day(LOOP_DAYS[0])
    real = loop["lake"].read_table("cost_ledger", {"date": DAY1})
    assert reconcile(LOOP_DAYS[0], _billed_by_source(real), sources).passed is True
    rows = real.to_pylist()
    lost = next(
        i for i, r in enumerate(rows) if r["x_SourceUri"].endswith(".parquet") and r["BilledCost"] >= Decimal("0.05")
    )
    result = reconcile(LOOP_DAYS[0], _billed_by_source(real.take([i for i in range(len(rows)) if i != lost])), sources)
    assert result.passed is False
    mismatched = [u.rsplit("/", 1)[-1] for u in result.mismatched]
    assert mismatched == ["rai-cur-00001.snappy.parquet"]
    assert reconcile(LOOP_DAYS[0], {}, []).passed is False  # no export at all is not a zero bill
    lost_day = reconcile(LOOP_DAYS[0], {}, sources)  # every line item of a day the exports bill lost
    assert lost_day.passed is False and lost_day.covered is True
    assert set(lost_day.mismatched) == set(_billed_by_source(real))


def test_sensor_requests_one_rollback_per_violation_with_stable_run_keys(loop):
    tick = _evaluate(loop)
    requests = {r.tags["rai-pipelines/app"]: r for r in tick.run_requests}
    assert set(requests) == {"credit-scoring-ai", "employment-screening-ai"}
    credit = requests["credit-scoring-ai"].run_config["ops"]["gitops_rollback"]["config"]
    assert credit["bad_version"] == "2.0.0"
    assert credit["violations"] == ["Estimated inference cost exceeds budget (0.005 USD)."]
    fairness = requests["employment-screening-ai"].run_config["ops"]["gitops_rollback"]["config"]
    # each deployment (application and environment) is its own concurrency key: never serialised behind another's
    assert requests["credit-scoring-ai"].tags["rai-pipelines/remediation-target"] == credit["overlay"]
    assert requests["employment-screening-ai"].tags["rai-pipelines/remediation-target"] == fairness["overlay"]
    assert fairness["violations"] == ["AI model fairness score below acceptable threshold (0.8)."]
    # Nothing changed: the next tick skips. A restart with no cursor asks for the same run keys.
    assert _evaluate(loop, tick.cursor).run_requests == []
    again = _evaluate(loop)
    assert sorted(r.run_key for r in again.run_requests) == sorted(r.run_key for r in tick.run_requests)
    # A commit elsewhere in the GitOps repository is a new revision, not a new violation.
    with GitOpsCheckout(loop["url"], "main", str(loop["world"].home / "scratch")) as co:
        (co.path / "README.md").write_text("# GitOps repository\n\nDocs only.\n")
        co.commit("docs", "unrelated change", {})
        co.push()
    after_unrelated = _evaluate(loop, tick.cursor)
    assert after_unrelated.cursor != tick.cursor
    assert sorted(r.run_key for r in after_unrelated.run_requests) == sorted(r.run_key for r in tick.run_requests)
    observed = {e.metadata["app"].value: e for e in tick.asset_events}
    assert set(observed) == {"credit-scoring-ai", "employment-screening-ai"}
    assert observed["credit-scoring-ai"].metadata["remediation"].value == "rollback"
    assert observed["credit-scoring-ai"].asset_key.to_user_string() == "governance_decisions"
    # each observation carries its record's place and digest: the log's head, anchored outside the file
    by_digest = {r["digest"]: r for r in loop["log"].records()}
    for event in tick.asset_events:
        record = by_digest[event.metadata["record_digest"].value]
        assert event.metadata["sequence"].value == record["sequence"]
    records = [r for r in loop["log"].records() if r.get("kind") != "remediation"]
    denied = [r for r in records if r["result"].get("deny")]
    assert {r["decision_id"] for r in denied} == {r.tags["rai-pipelines/decision-id"] for r in tick.run_requests}
    assert all(r["bundles"]["policies"]["digest"].startswith("sha256:") for r in records)
    assert all(r["facts_source_run_ids"] for r in denied)
    assert loop["log"].verify() is None


def test_a_dry_run_of_the_rollback_job_records_what_it_would_push_and_pushes_nothing(loop):
    tick = _evaluate(loop)
    request = next(r for r in tick.run_requests if r.tags["rai-pipelines/app"] == "credit-scoring-ai")
    config = request.run_config["ops"]["gitops_rollback"]["config"]
    refs = ["--git-dir", str(loop["world"].gitops_remote), "for-each-ref", "--format=%(refname) %(objectname)"]
    before = run_git(refs)
    result = (
        loop["defs"]
        .resolve_job_def("gitops_rollback_job")
        .execute_in_process(
            run_config={"ops": {"gitops_rollback": {"config": {**config, "dry_run": True}}}},
            instance=loop["instance"],
            raise_on_error=True,
        )
    )
    metadata = result.asset_materializations_for_node("gitops_rollback")[0].metadata
    assert metadata["status"].value == "dry_run" and metadata["dry_run"].value is True
    assert metadata["restored_version"].value == "1.4.2" and metadata["pushed_to_branch"].value == "main"
    assert "Rai-Restored-Version: 1.4.2" in metadata["commit_message"].value
    assert '+        model-version: "1.4.2"' in metadata["diff"].value
    assert run_git(refs) == before
    record = [r for r in loop["log"].records() if r.get("kind") == "remediation"][-1]
    assert record["decision_id"] == config["decision_id"]
    assert record["action"]["type"] == "dry_run" and record["action"]["pushed"] is False


def test_rollback_job_pushes_the_last_compliant_versions(loop, tmp_path):
    tick = _evaluate(loop)
    job = loop["defs"].resolve_job_def("gitops_rollback_job")
    before = remote_head(loop["url"], "main")
    shas = []
    for request in tick.run_requests:
        result = job.execute_in_process(
            run_config=request.run_config, instance=loop["instance"], tags=request.tags, raise_on_error=True
        )
        materialization = result.asset_materializations_for_node("gitops_rollback")[0]
        shas.append(materialization.metadata["commit_sha"].value)
    assert remote_head(loop["url"], "main") == shas[-1]
    assert (
        run_git(["--git-dir", str(loop["world"].gitops_remote), "rev-list", "--count", f"{before}..main"]).strip()
        == "2"
    )
    for sha in shas:
        body = run_git(["--git-dir", str(loop["world"].gitops_remote), "log", "-1", "--format=%B", sha])
        assert "Rai-Decision-Id: " in body and "Rai-Bad-Version: " in body and "Rai-Restored-Version: " in body
    with GitOpsCheckout(loop["url"], "main", str(tmp_path)) as co:
        versions = {}
        for app in ("credit-scoring-ai", "employment-screening-ai"):
            rendered = kustomize_render(co.path / "apps" / app / "overlays" / "production")
            deployment = next(d for d in rendered if d["kind"] == "Deployment")
            versions[app] = deployment["spec"]["template"]["metadata"]["labels"]["model-version"]
    assert versions == {"credit-scoring-ai": "1.4.2", "employment-screening-ai": "3.1.0"}
    remediations = [r for r in loop["log"].records() if r.get("kind") == "remediation"]
    pushed = [r for r in remediations if r["action"]["pushed"]]
    assert sorted(r["action"]["commit"] for r in pushed) == sorted(shas)
    assert loop["log"].verify() is None
    # The GitOps repository changed: the sensor evaluates again, and everything is now allowed.
    after = _evaluate(loop, tick.cursor)
    assert after.run_requests == []
    latest = [r for r in loop["log"].records() if r.get("kind") != "remediation"][-2:]
    assert all(r["result"]["allowed"] for r in latest)


def test_a_rollback_is_verified_when_the_restored_versions_next_facts_arrive(loop, specs):
    """Runs after the rollbacks above: credit-scoring-ai was returned from 2.0.0 (facts of 2023-11-06)
    to 1.4.2, whose only facts are older; the verification waits for newer ones."""
    from rai_pipelines.core import datasets
    from rai_pipelines.defs.keys import model_facts_key
    from rai_pipelines.governance.facts import facts_table

    def verifications():
        return [r for r in loop["log"].records() if r.get("kind") == "verification"]

    rollback = next(
        r
        for r in loop["log"].records()
        if r.get("kind") == "remediation" and r["app"] == "credit-scoring-ai" and r["action"]["pushed"]
    )
    assert rollback["action"]["type"] == "rollback_commit"
    waiting = _evaluate(loop)
    assert verifications() == []  # no facts of 1.4.2 newer than 2.0.0's violation yet: nothing settled
    assert json.loads(waiting.cursor)["settled"] == []

    # The next day's facts of the restored version arrive: measured as on its last day, and compliant.
    restored = dict(_facts(loop)[("credit-scoring-ai", "1.4.2")], date="2023-11-07")
    lake_dir = loop["world"].lake_root / datasets.GOVERNANCE_FACTS / "model=credit-scoring-ai" / "date=2023-11-07"
    loop["lake"].write_table(
        datasets.GOVERNANCE_FACTS, {"model": "credit-scoring-ai", "date": "2023-11-07"}, facts_table([restored])
    )
    try:
        loop["instance"].report_runless_asset_event(
            dg.AssetMaterialization(model_facts_key(specs["credit-scoring-ai"]), partition="2023-11-07")
        )
        tick = _evaluate(loop, waiting.cursor)
        [verified] = verifications()
        assert verified["decision_id"] == rollback["decision_id"] and verified["model_version"] == "1.4.2"
        assert verified["result"]["status"] == "verified" and verified["result"]["facts_date"] == "2023-11-07"
        assert verified["gitops"]["rollback_commit"] == rollback["action"]["commit"]
        [check] = [e for e in tick.asset_events if isinstance(e, dg.AssetCheckEvaluation)]
        assert check.check_name == "restored_version_complies" and check.passed
        assert check.metadata["decision_id"].value == rollback["decision_id"]
        assert json.loads(tick.cursor)["settled"] == [rollback["decision_id"]]
        # settled once: a later evaluation (a restart without cursor would only repeat the record) adds nothing
        loop["instance"].report_runless_asset_event(
            dg.AssetMaterialization(model_facts_key(specs["credit-scoring-ai"]), partition="2023-11-07")
        )
        _evaluate(loop, tick.cursor)
        assert len(verifications()) == 1
        assert loop["log"].verify() is None
        # Run by hand from the UI, the check judges every recent rollback now.
        from rai_pipelines.defs.gitops.assets import gitops_rollback
        from rai_pipelines.defs.gitops.verification import restored_version_complies

        result = dg.materialize(
            [gitops_rollback, restored_version_complies],
            selection=dg.AssetSelection.checks(restored_version_complies),
            instance=loop["instance"],
            resources=loop["defs"].resources,
        )
        [evaluation] = result.get_asset_check_evaluations()
        statuses = {r["app"]: r["status"] for r in evaluation.metadata["rollbacks"].value}
        assert evaluation.passed and statuses["credit-scoring-ai"] == "verified"
        assert statuses["employment-screening-ai"] == "waiting"  # no newer facts of its restored version
    finally:
        shutil.rmtree(lake_dir)


def test_a_manifest_with_an_unsafe_version_is_alerted_not_rolled_back(loop, tmp_path):
    with GitOpsCheckout(loop["url"], "main", str(tmp_path)) as co:
        patch = co.path / "apps/credit-scoring-ai/overlays/production/model-version.yaml"
        # Whatever version the overlay pins (an earlier test may have rolled it back), made unsafe.
        patch.write_text(re.sub(r'model-version: "([^"]+)"', r'model-version: "\1;reboot"', patch.read_text()))
        co.commit("break the label", "test", {})
        co.push()
    tick = _evaluate(loop)
    assert all(r.tags["rai-pipelines/app"] != "credit-scoring-ai" for r in tick.run_requests)
    last = [r for r in loop["log"].records() if r.get("app") == "credit-scoring-ai"][-1]
    assert last["action"]["type"] == "alert" and "not a valid model version" in last["result"]["error"]


def test_a_bad_export_fails_the_run_and_keeps_the_previous_partition(loop, specs):
    world = loop["world"]
    lake = loop["lake"]
    before = lake.read_table("cost_ledger", {"date": DAY1})
    export = next(world.legacy_export_root.rglob("*.csv.gz"))
    original = export.read_bytes()
    rows = list(csv.reader(io.StringIO(gzip.decompress(original).decode())))
    rows[4][rows[0].index("lineItem/UnblendedCost")] = "n/a"  # line 5 of the file
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    export.write_bytes(gzip.compress(out.getvalue().encode()))
    try:
        job = loop["defs"].resolve_job_def("daily_governance_job")
        result = job.execute_in_process(
            partition_key=DAY1, instance=loop["instance"], raise_on_error=False, run_config=QUIET
        )
        assert not result.success
        failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
        assert "line 5: field lineItem/UnblendedCost = 'n/a' is not a number" in str(failure.event_specific_data.error)
        assert lake.read_table("cost_ledger", {"date": DAY1}).equals(before)
    finally:
        export.write_bytes(original)


def test_an_overlay_that_does_not_render_is_alerted_and_the_others_still_evaluated(loop, tmp_path):
    def credit_decisions() -> int:
        return sum(1 for r in loop["log"].records() if r.get("app") == "credit-scoring-ai" and "result" in r)

    before = credit_decisions()
    with GitOpsCheckout(loop["url"], "main", str(tmp_path)) as co:
        broken = co.path / "apps/employment-screening-ai/overlays/production/kustomization.yaml"
        broken.write_text(broken.read_text() + "\nresources: [missing.yaml\n")
        co.commit("break the employment overlay", "test", {})
        co.push()
    _evaluate(loop)
    errors = [r for r in loop["log"].records() if r.get("kind") == "render_error"]
    assert errors and errors[-1]["gitops"]["overlay"] == "apps/employment-screening-ai/overlays/production"
    assert errors[-1]["action"]["type"] == "alert"
    assert credit_decisions() == before + 1  # the other model was still evaluated


def test_a_billing_restatement_rebuilds_exactly_the_days_built_from_older_files(loop, tmp_path):
    """AWS rewrites the month's CUR file with a corrected cost: the restatement sensor requests
    the ledger days of that billing period built from the old file, and only until they are rebuilt."""
    from tests.conftest import copy_world

    world = copy_world(loop["world"], tmp_path / "world")
    defs = build_definitions(settings_for(world))
    lake = Lake(str(world.lake_root))
    sensor = defs.resolve_sensor_def("billing_restatement_sensor")
    job = defs.resolve_job_def("daily_governance_job")
    ledger_only = [dg.AssetKey("cost_ledger")]

    def tick(instance):
        context = dg.build_sensor_context(instance=instance, definitions=defs, resources=defs.resources)
        return sensor.evaluate_tick(context).run_requests

    def billed(day):
        return sum(r["BilledCost"] for r in lake.read_table("cost_ledger", {"date": day}).to_pylist())

    with dg.instance_for_test() as instance:
        for day in (DAY1, DAY2):
            job.execute_in_process(partition_key=day, instance=instance, run_config=QUIET, asset_selection=ledger_only)
        assert tick(instance) == []
        before = billed(DAY1)

        (cur,) = world.legacy_export_root.rglob("*.csv.gz")
        rows = list(csv.reader(io.StringIO(gzip.decompress(cur.read_bytes()).decode())))
        header = rows[0]
        start, cost = header.index("lineItem/UsageStartDate"), header.index("lineItem/UnblendedCost")
        corrected = next(r for r in rows[1:] if r[start].startswith(DAY1) and r[cost])
        corrected[cost] = str(Decimal(corrected[cost]) + Decimal("1.25"))
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows(rows)
        cur.write_bytes(gzip.compress(text.getvalue().encode()))

        requests = tick(instance)
        assert sorted(r.partition_key for r in requests) == [DAY1, DAY2]  # the whole billing period
        assert all(
            {k.to_user_string() for k in r.asset_selection}
            == {"cost_ledger", "credit_scoring_ai/governance_facts", "employment_screening_ai/governance_facts"}
            for r in requests
        )
        assert len({r.run_key for r in requests}) == 2

        job.execute_in_process(partition_key=DAY1, instance=instance, run_config=QUIET, asset_selection=ledger_only)
        assert billed(DAY1) == before + Decimal("1.25")  # replaced, not added to
        assert [r.partition_key for r in tick(instance)] == [DAY2]


def test_a_backfill_is_one_run_that_reads_each_export_once_and_equals_the_daily_runs(loop, tmp_path):
    from rai_pipelines.costs import ledger as ledger_rows
    from rai_pipelines.definitions import build_definitions
    from tests.conftest import copy_world

    world = copy_world(loop["world"], tmp_path / "world")
    defs = build_definitions(settings_for(world))
    lake = Lake(str(world.lake_root))
    daily = {day: loop["lake"].read_table("cost_ledger", {"date": day}) for day in (DAY1, DAY2)}
    passes = []
    original = ledger_rows.to_focus_days

    def counted(source, days):
        passes.append((source.uri.rsplit("/", 1)[-1], tuple(days)))
        return original(source, days)

    from rai_pipelines.costs.sources.aws_cur import CurExportReader

    reads = []
    original_read = CurExportReader.read

    def counted_read(reader, day):
        reads.append((reader.layout, day))
        return original_read(reader, day)

    ledger_rows.to_focus_days = counted
    CurExportReader.read = counted_read
    try:
        job = dg.define_asset_job("ledger_backfill", selection=["cost_ledger"]).resolve(
            asset_graph=defs.resolve_asset_graph()
        )
        with dg.instance_for_test() as instance:
            result = job.execute_in_process(
                instance=instance,
                resources=defs.resources,
                run_config=QUIET,
                tags={"dagster/asset_partition_range_start": DAY1, "dagster/asset_partition_range_end": DAY2},
            )
            assert result.success
            materialised = [e.materialization for e in result.get_asset_materialization_events()]
            fingerprints = {m.partition: m.metadata["export_fingerprint"].value for m in materialised}
            sensor = defs.resolve_sensor_def("billing_restatement_sensor")
            context = dg.build_sensor_context(instance=instance, definitions=defs, resources=defs.resources)
            assert sensor.evaluate_tick(context).run_requests == []  # each day's digest is recorded
    finally:
        ledger_rows.to_focus_days = original
        CurExportReader.read = original_read
    assert sorted(fingerprints) == [DAY1, DAY2]
    # each CUR export read once for the billing period, not once per day
    assert sorted(layout for layout, _ in reads) == ["cur2", "legacy"]
    # one pass per export file for both days, not one per day
    assert len(passes) == len({name for name, _ in passes}) and all(days == tuple(LOOP_DAYS) for _, days in passes)

    def comparable(ledger):  # the copied world's files have other paths, so other uris and row hashes
        names = pa.array([u.rsplit("/", 1)[-1] for u in ledger.column("x_SourceUri").to_pylist()])
        ledger = ledger.drop_columns(["x_SourceUri", "x_SourceRowHash"]).append_column("file", names)
        return ledger.sort_by([("file", "ascending"), ("x_SourceRowNumber", "ascending")])

    for day in (DAY1, DAY2):
        assert comparable(lake.read_table("cost_ledger", {"date": day})).equals(comparable(daily[day]))


def test_cur2_files_come_from_the_export_manifest_not_the_folder(loop, tmp_path):
    """A stale part left beside the current files (an overwrite that wrote fewer parts) is not read;
    a period whose manifest has not landed yet has no files; a broken manifest names itself."""
    from datetime import date

    from rai_pipelines.core.errors import BadInputError
    from rai_pipelines.costs.sources.aws_cur import CurExportReader
    from tests.conftest import copy_world

    world = copy_world(loop["world"], tmp_path / "world")
    reader = CurExportReader(str(world.cur2_export_root), "cur2")
    day = date.fromisoformat(DAY1)
    (current,) = reader.file_paths(day)
    stale = current.replace("-00001.", "-00002.")
    shutil.copyfile(current, stale)
    assert reader.file_paths(day) == [current]
    assert reader.file_paths(date(2023, 12, 1)) == []
    (manifest,) = world.cur2_export_root.rglob("*-Manifest.json")
    manifest.write_text('{"dataFiles": "s3://x"}')
    with pytest.raises(BadInputError, match=r"Manifest\.json: manifest has no dataFiles list"):
        reader.file_paths(day)


def test_the_finops_foundations_validator_passes_on_ledgers_from_every_source(loop, tmp_path):
    from tests.focus_validator import focus_validator_failures

    ledger = loop["lake"].read_dataset("cost_ledger")
    assert set(ledger.column("x_SourceProvider").to_pylist()) == {"aws"}
    sources = {uri.rsplit("/", 1)[-1] for uri in ledger.column("x_SourceUri").to_pylist()}
    assert sources == {"rai-cur-1.csv.gz", "rai-cur-00001.snappy.parquet"}  # legacy CUR and CUR 2.0
    result, failed = focus_validator_failures(ledger, tmp_path)
    # the CUR carries no invoice id for the open month, and AWS invoices as "Amazon Web Services, Inc."
    assert failed == {"InvoiceId-C-005-C", "BilledCost-C-005-C"}, result["failures"]


def test_facts_exported_from_the_lake_let_the_gate_decide_as_the_sensor_does(loop, specs, tmp_path, capsys):
    """The CI gate's facts come from the lake the loop writes (`facts export`): gating each model's
    production overlay with them denies the versions the policy sensor rolled back (2.0.0 over
    budget, 3.2.0 unfair) and allows the ones it restored. The overlays are made apart, as a
    candidate's branch would hold them: other tests of this module change the GitOps remote."""
    from rai_pipelines.cli import main

    facts = tmp_path / "facts.json"
    assert main(["facts", "export", "--lake", str(loop["world"].lake_root), "--out", str(facts)]) == 0
    exported = json.loads(facts.read_text())
    assert set(exported) == {version for _, version in _facts(loop)}
    assert (
        exported["2.0.0"]["estimated_cost_per_inference_usd"]
        == _facts(loop)[("credit-scoring-ai", "2.0.0")]["estimated_cost_per_inference_usd"]
    )
    only_credit = tmp_path / "credit.json"
    main(
        [
            "facts",
            "export",
            "--lake",
            str(loop["world"].lake_root),
            "--model",
            "credit-scoring-ai",
            "--out",
            str(only_credit),
        ]
    )
    assert set(json.loads(only_credit.read_text())) == {v for m, v in _facts(loop) if m == "credit-scoring-ai"}
    capsys.readouterr()
    from rai_pipelines.demo.world import _base_files, overlay_files

    expected = {("credit-scoring-ai", "2.0.0"): 1, ("credit-scoring-ai", "1.4.2"): 0}
    expected |= {("employment-screening-ai", "3.2.0"): 1, ("employment-screening-ai", "3.1.0"): 0}
    for (model, version), code in expected.items():
        app = tmp_path / "gitops" / f"{model}-{version}" / "apps" / model
        for folder, files in (
            ("base", _base_files(specs[model])),
            ("overlays/production", overlay_files(specs[model], version)),
        ):
            (app / folder).mkdir(parents=True)
            for name, text in files.items():
                (app / folder / name).write_text(text)
        got = main(["gate", str(app / "overlays" / "production"), "--facts", str(facts), "--no-decision-log"])
        assert got == code, (model, version, capsys.readouterr().out)
    assert main(["facts", "export", "--lake", str(tmp_path / "empty-lake")]) == 2
    # --out makes its folder (as in a fresh checkout), and a path that cannot be written is a clear exit 2
    lake = str(loop["world"].lake_root)
    assert main(["facts", "export", "--lake", lake, "--out", str(tmp_path / "new" / "facts.json")]) == 0
    assert json.loads((tmp_path / "new" / "facts.json").read_text()) == exported
    capsys.readouterr()
    assert main(["facts", "export", "--lake", lake, "--out", str(facts / "under-a-file.json")]) == 2
    assert f"error: cannot write {facts / 'under-a-file.json'}" in capsys.readouterr().err
    assert json.loads(facts.read_text()) == exported
