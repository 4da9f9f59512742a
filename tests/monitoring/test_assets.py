"""The monitoring assets in Dagster on the demo world: blocking data-quality checks that stop the
reports on bad snapshots, plots, late labels re-materialising the days they belong to, sampling and
PII handling declared in the registry."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import date, timedelta

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pytest

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.core.lake import Lake
from rai_pipelines.core.registry import Sampling, load_model_spec
from rai_pipelines.definitions import build_definitions
from rai_pipelines.monitoring.data_quality import validate_snapshot
from rai_pipelines.monitoring.drift import ReferenceProfile
from rai_pipelines.monitoring.fairness import group_fairness
from rai_pipelines.monitoring.labels import match_labels
from rai_pipelines.monitoring.reports import drift_summary, fairness_summary
from rai_pipelines.monitoring.snapshots import build_snapshot, stratified_sample
from tests.conftest import make_world, settings_for

DAYS = [date(2023, 11, 5) + timedelta(days=i) for i in range(4)]  # credit labels lag 3 days
DAY = DAYS[0].isoformat()
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
CREDIT = "credit_scoring_ai"


@pytest.fixture(scope="module")
def world(tmp_path_factory, specs):
    return make_world(tmp_path_factory.mktemp("monitoring") / "world", specs, days=DAYS)


def _run(defs, instance, assets: list[str], day: str):
    job = defs.resolve_job_def("late_labels_job")
    keys = [dg.AssetKey.from_user_string(a) for a in assets]
    return job.execute_in_process(
        partition_key=day, instance=instance, run_config=QUIET, asset_selection=keys, raise_on_error=False
    )


def _context(instance, defs, cursor=None):
    return dg.build_sensor_context(instance=instance, definitions=defs, resources=defs.resources, cursor=cursor)


def _model_assets(model: str) -> list[str]:
    return [f"{model}/{a}" for a in ("feature_snapshots", "drift_report", "fairness_report", "performance_report")]


def test_late_labels_rematerialise_exactly_the_days_they_belong_to(world, tmp_path):
    lake = Lake(str(world.lake_root))
    labels = {"model": "credit-scoring-ai", "date": DAYS[3].isoformat()}  # the labels of DAYS[0]
    held_back = tmp_path / "labels.parquet"
    shutil.move(lake.path("labels", labels), held_back)  # not arrived yet
    defs = build_definitions(settings_for(world))
    sensor = defs.resolve_sensor_def("late_labels_sensor")
    with dg.instance_for_test() as instance:
        run = _run(defs, instance, _model_assets(CREDIT), DAY)
        assert run.success
        perf = lake.read_json("performance_report", {"model": "credit-scoring-ai", "date": DAY}, "report.json")
        assert perf["versions"]["1.4.2"]["labelled_rows"] == 0 and perf["versions"]["1.4.2"]["roc_auc"] is None
        assert perf["versions"]["1.4.2"]["estimated_roc_auc"] > 0.9  # estimated from the scores meanwhile

        empty = sensor.evaluate_tick(_context(instance, defs))
        assert empty.run_requests == []

        lake.write_table("labels", labels, pa.parquet.read_table(held_back))  # the labels arrive
        tick = sensor.evaluate_tick(_context(instance, defs, empty.cursor))
        assert [r.partition_key for r in tick.run_requests] == [DAY]
        request = tick.run_requests[0]
        assert {k.to_user_string() for k in request.asset_selection} == {
            *_model_assets(CREDIT),
            f"{CREDIT}/explanation_report",
            f"{CREDIT}/governance_facts",
        }
        arrival = match_labels(lake, defs.resources["registry"].model("credit-scoring-ai"), labels)
        assert arrival.days == {DAY: arrival.rows} and arrival.unmatched == 0

        rerun = _run(defs, instance, _model_assets(CREDIT), DAY)
        assert rerun.success
        perf = lake.read_json("performance_report", {"model": "credit-scoring-ai", "date": DAY}, "report.json")
        assert perf["versions"]["1.4.2"]["labelled_rows"] == arrival.rows > 3000
        assert 0.9 < perf["versions"]["1.4.2"]["roc_auc"] < 1

        again = sensor.evaluate_tick(_context(instance, defs, tick.cursor))
        assert again.run_requests == []  # the snapshot is now newer than the labels


def test_labels_for_unknown_ids_are_counted_not_joined(world, specs, tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    spec = specs["credit-scoring-ai"]
    source = Lake(str(world.lake_root))
    partition = {"model": spec.name, "date": DAY}
    lake.write_table("inference_logs", partition, source.read_table("inference_logs", partition))
    known = source.read_table("inference_logs", partition).column("request_id").to_pylist()[:10]
    arrived = {"model": spec.name, "date": DAYS[2].isoformat()}
    lake.write_table(
        "labels", arrived, pa.table({"request_id": known + ["cl-nobody-1", "cl-nobody-2"], "label": [1] * 12})
    )
    result = match_labels(lake, spec, arrived)
    assert result.days == {DAY: 10} and result.unmatched == 2 and result.rows == 12
    lake.write_table("labels", arrived, pa.table({"id": ["x"], "outcome": [1]}))
    with pytest.raises(BadInputError, match=r"labels/model=credit-scoring-ai/date=2023-11-07.*request_id and label"):
        match_labels(lake, spec, arrived)


@pytest.mark.parametrize(
    "damage, finding",
    [
        ("drop_feature", "car_value: column is missing"),
        ("null_feature", "driver_tenure: 3"),
        ("empty_day", "the day has no traffic"),
    ],
)
def test_a_failing_blocking_check_stops_the_reports_and_names_the_column(world, tmp_path, damage, finding):
    from tests.conftest import copy_world

    broken = copy_world(world, tmp_path / "world")
    lake = Lake(str(broken.lake_root))
    for built in ("feature_snapshots", "drift_report", "fairness_report", "performance_report"):
        shutil.rmtree(broken.lake_root / built, ignore_errors=True)  # left by other tests of the shared world
    partition = {"model": "credit-scoring-ai", "date": DAY}
    log = lake.read_table("inference_logs", partition)
    if damage == "drop_feature":
        log = log.drop_columns(["car_value"])
    elif damage == "null_feature":
        log = log.set_column(
            log.column_names.index("driver_tenure"), "driver_tenure", pa.nulls(log.num_rows, pa.float64())
        )
    else:
        log = log.slice(0, 0)
    lake.write_table("inference_logs", partition, log)
    defs = build_definitions(settings_for(broken))
    with dg.instance_for_test() as instance:
        if damage == "drop_feature":  # the snapshot itself refuses: nothing is written
            result = _run(defs, instance, _model_assets(CREDIT), DAY)
            assert not result.success
            assert not lake.exists("feature_snapshots", partition)
            failure = [e for e in result.all_events if e.is_step_failure][0]
            assert "lacks column(s) car_value" in failure.step_failure_data.error.to_string()
            return
        result = _run(defs, instance, _model_assets(CREDIT), DAY)
        checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
        assert checks["snapshot_is_complete"].passed is False
        text = checks["snapshot_is_complete"].metadata["failed"].value
        assert all(part in text for part in finding.split(": ")), text
        materialised = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
        assert materialised == {f"{CREDIT}/feature_snapshots"}  # no report on bad data
        assert not lake.exists("feature_snapshots", partition)  # where reports and windows read
        assert lake.exists("feature_snapshots_rejected", partition)  # kept for inspection
        for report in ("drift_report", "fairness_report", "performance_report"):
            assert not lake.exists(report, partition, "report.json")


def test_drift_report_writes_plots_of_the_drifted_features(world, tmp_path):
    from tests.conftest import copy_world

    copy = copy_world(world, tmp_path / "world")
    lake = Lake(str(copy.lake_root))
    defs = build_definitions(settings_for(copy))
    day = DAYS[3].isoformat()
    with dg.instance_for_test() as instance:
        assert _run(defs, instance, _model_assets("employment_screening_ai"), day).success
        assert _run(defs, instance, _model_assets(CREDIT), day).success
    report = lake.read_json("drift_report", {"model": "credit-scoring-ai", "date": day}, "report.json")
    drifted = {f"{v}__{f}.png" for v, doc in report["versions"].items() for f in doc["drifted_features"]}
    assert drifted and set(report["plots"]) == drifted | {"drift_over_time.png"}  # every feature, over time
    for path in report["plots"].values():
        with open(path, "rb") as png:
            assert png.read(8) == b"\x89PNG\r\n\x1a\n"
    fairness = {"model": "employment-screening-ai", "date": day}
    with open(lake.path("fairness_report", fairness, "fairness_over_time.png"), "rb") as png:
        assert png.read(8) == b"\x89PNG\r\n\x1a\n"


def test_a_new_category_and_a_single_group_get_specific_outcomes(specs, world):
    spec = specs["employment-screening-ai"]
    lake = Lake(str(world.lake_root))
    reference = lake.read_table("reference", {"model": spec.name}).to_pandas()
    current = reference.sample(2_000, random_state=1).copy()
    current["SCHL"] = current["SCHL"].astype(str)
    current.loc[current.index[:40], "SCHL"] = "25"  # a level the reference never had
    current["protected__SEX"] = "1"  # one group only
    profile = ReferenceProfile.from_frame(reference, list(spec.numeric_features), list(spec.categorical_features), None)
    result = validate_snapshot(current, spec, profile, "like_reference")
    found = {(f.column, f.detail) for f in result.findings}
    assert ("SCHL", "40 value(s) outside the reference's levels: 25") in found
    assert ("protected__SEX", "1 group(s): fairness cannot compare groups") in found
    drift = drift_summary(spec, reference, current)["versions"]["3.1.0"]
    assert next(f for f in drift["features"] if f["feature"] == "SCHL")["unseen_categories"] == ["25"]
    fairness = fairness_summary(spec, current)["versions"]["3.1.0"]
    sex = next(a for a in fairness["attributes"] if a["attribute"] == "SEX")
    assert sex["ratio"] is None and "fewer than two groups" in sex["note"]
    assert fairness["fairness_score"] is None  # no score, so the policy's fail-closed rule applies


def test_intersections_are_reported_with_their_worst_group(specs, world):
    spec = specs["employment-screening-ai"]
    spec = replace(spec, intersections=(("SEX", "RAC1P"),))
    snapshot = Lake(str(world.lake_root)).read_table("reference", {"model": spec.name}).to_pandas()
    doc = fairness_summary(spec, snapshot)["versions"]["3.1.0"]
    both = next(a for a in doc["attributes"] if a["attribute"] == "SEX&RAC1P")
    assert both["enforced"] is False and "&" in both["worst_group"]
    # the reference carries its labels: equalized odds computed here apart, over the intersection's
    # groups with enough labelled rows of both outcomes
    labelled = snapshot[snapshot["label"].notna()]
    favourable = spec.favourable_outcome
    rates = labelled.groupby(["protected__SEX", "protected__RAC1P"], observed=True)[["label", "decision"]].apply(
        lambda g: pd.Series(
            {
                "rows": len(g),
                "positives": int((g["label"] == favourable).sum()),
                "negatives": int((g["label"] != favourable).sum()),
                "tpr": (g.loc[g["label"] == favourable, "decision"] == favourable).mean(),
                "fpr": (g.loc[g["label"] != favourable, "decision"] == favourable).mean(),
            }
        )
    )
    scored = rates[(rates["rows"] >= spec.min_group_size) & (rates["positives"] > 0) & (rates["negatives"] > 0)]
    assert len(scored) >= 2
    expected = min(scored["tpr"].min() / scored["tpr"].max(), scored["fpr"].min() / scored["fpr"].max())
    assert both["equalized_odds_ratio"] == pytest.approx(expected, abs=1e-12)
    enforced = [a["equalized_odds_ratio"] for a in doc["attributes"] if a["enforced"]]
    assert doc["equalized_odds_ratio"] == min(enforced)  # the worst enforced attribute


def test_sampling_keeps_each_strata_share_with_a_fixed_seed(specs, world):
    log = Lake(str(world.lake_root)).read_table("inference_logs", {"model": "employment-screening-ai", "date": DAY})
    sample = stratified_sample(log, 1_000, ("SEX",), seed=3)
    assert sample.num_rows == 1_000
    share = pd.Series(log.column("SEX").to_pylist()).value_counts(normalize=True)
    drawn = pd.Series(sample.column("SEX").to_pylist()).value_counts(normalize=True)
    assert (drawn - share).abs().max() < 0.002
    assert stratified_sample(log, 1_000, ("SEX",), seed=3).equals(sample)
    assert stratified_sample(log, 10**9, ("SEX",), seed=3) is log


def test_declared_pii_never_reaches_the_snapshot_and_may_not_be_a_feature(specs, world, tmp_path):
    spec = replace(specs["credit-scoring-ai"], pii_columns=("applicant_email",), sampling=Sampling(max_rows=500))
    log = Lake(str(world.lake_root)).read_table("inference_logs", {"model": spec.name, "date": DAY})
    log = log.append_column("applicant_email", pa.array([f"a{i}@example.com" for i in range(log.num_rows)]))
    snapshot = build_snapshot(spec, log, None, b"k" * 32, "log")
    assert snapshot.num_rows == 500 and "applicant_email" not in snapshot.column_names
    bad = _declaration(tmp_path, specs["credit-scoring-ai"], pii_columns=["car_value"])
    with pytest.raises(BadInputError, match="pii_columns car_value are also declared as features"):
        load_model_spec(bad)


def _declaration(tmp_path, spec, **changes):
    """The model's registry file with some fields changed, written to tmp_path."""
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe")
    doc = yaml.load(open(spec.source).read())
    doc.update(changes)
    path = tmp_path / f"{spec.name}.yaml"
    with open(path, "w") as out:
        yaml.dump(doc, out)
    return path


def test_weekly_window_and_a_period_reference_are_read_from_the_snapshots(specs, world, tmp_path):
    from rai_pipelines.monitoring.lake_reads import read_reference, read_window

    source_lake, lake = Lake(str(world.lake_root)), Lake(str(tmp_path / "lake"))
    spec = replace(specs["credit-scoring-ai"], drift_window_days=7)
    for day in DAYS[:2]:
        partition = {"model": spec.name, "date": day.isoformat()}
        log = source_lake.read_table("inference_logs", partition)
        lake.write_table("inference_logs", partition, log)
        lake.write_table("feature_snapshots", partition, build_snapshot(spec, log, None, b"k" * 32, "log"))
    week = read_window(lake, spec, DAYS[1].isoformat())
    assert len(week) == sum(
        len(lake.read_table("inference_logs", {"model": spec.name, "date": d.isoformat()})) for d in DAYS[:2]
    )
    period = load_model_spec(
        _declaration(tmp_path, spec, reference={"source": "period", "start": "2023-11-05", "end": "2023-11-05"})
    )
    assert len(read_reference(lake, period)) == len(
        lake.read_table("feature_snapshots", {"model": spec.name, "date": DAY})
    )
    backwards = {"source": "period", "start": "2023-11-05", "end": "2023-11-01"}
    with pytest.raises(BadInputError, match="end 2023-11-01 is before start 2023-11-05"):
        load_model_spec(_declaration(tmp_path, spec, reference=backwards))


def test_group_fairness_ignores_rows_without_a_group():
    decisions = pd.Series([1, 0, 1, 1, 0, 1])
    groups = pd.Series(["a", "a", None, "b", "b", None], dtype="string")
    result = group_fairness(decisions, groups, 1, 1, "X", True)
    assert {g: s["count"] for g, s in result.groups.items()} == {"a": 2, "b": 2}


def test_a_json_lines_log_gives_the_same_snapshot_as_parquet(specs, world, tmp_path):
    from rai_pipelines.monitoring.snapshots import read_inference_log

    spec = specs["credit-scoring-ai"]
    partition = {"model": spec.name, "date": DAY}
    parquet = Lake(str(world.lake_root)).read_table("inference_logs", partition).slice(0, 300)
    lake = Lake(str(tmp_path / "lake"))
    frame = parquet.to_pandas()
    frame["timestamp"] = frame["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")
    lake.write_bytes("inference_logs", partition, "data.jsonl", frame.to_json(orient="records", lines=True).encode())
    log, uri = read_inference_log(lake, partition)
    assert uri.endswith("data.jsonl") and log.num_rows == 300
    from_json = build_snapshot(spec, log, None, b"k" * 32, uri).to_pandas()
    from_parquet = build_snapshot(spec, parquet, None, b"k" * 32, "p").to_pandas()
    pd.testing.assert_frame_equal(from_json, from_parquet, check_dtype=False)
    lake.write_bytes("inference_logs", partition, "data.jsonl", b'{"request_id": "a", "timestamp": "yesterday"}\n')
    with pytest.raises(BadInputError, match=r"data\.jsonl: column timestamp"):
        read_inference_log(lake, partition)


def test_the_monitoring_assets_run_on_an_s3_lake(specs, world, s3_server, tmp_path):
    """Inference logs as JSON lines in an S3 bucket (moto's server on loopback), reference and
    labels beside them: the snapshot, checks and reports are written to and read from the bucket."""
    from rai_pipelines.defs.monitoring.assets import build_model_assets
    from rai_pipelines.defs.partitions import daily_partitions
    from rai_pipelines.defs.resources import LakeResource

    spec = specs["credit-scoring-ai"]
    local = Lake(str(world.lake_root))
    lake = Lake(s3_server.lake_uri(s3_server.bucket("rai-lake"), "prod"))
    partition = {"model": spec.name, "date": DAY}
    frame = local.read_table("inference_logs", partition).to_pandas()
    frame["timestamp"] = frame["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")
    lake.write_bytes("inference_logs", partition, "data.jsonl", frame.to_json(orient="records", lines=True).encode())
    lake.write_table("reference", {"model": spec.name}, local.read_table("reference", {"model": spec.name}))
    arrived = {"model": spec.name, "date": DAYS[3].isoformat()}
    lake.write_table("labels", arrived, local.read_table("labels", arrived))

    key = tmp_path / "key"
    key.write_bytes(b"0" * 64)
    resource = LakeResource(root=lake.root, decision_log_dir=str(tmp_path / "log"), pseudonymisation_key_file=str(key))
    assets = build_model_assets(spec, daily_partitions(DAY))
    result = dg.materialize(assets, partition_key=DAY, resources={"lake": resource})
    assert result.success
    snapshot = lake.read_table("feature_snapshots", partition)
    assert snapshot.num_rows == len(frame) and snapshot.column("label").null_count == 0
    performance = lake.read_json("performance_report", partition, "report.json")["versions"]["1.4.2"]
    assert performance["labelled_rows"] == len(frame) and performance["roc_auc"] > 0.9
    assert lake.uri("drift_report", partition, "report.json").startswith("s3://rai-lake/prod/drift_report/")
    assert match_labels(lake, spec, arrived).days == {DAY: len(frame)}


def test_the_reference_profile_is_built_once_and_rebuilt_when_the_reference_changes(specs, world, tmp_path):
    from rai_pipelines.monitoring.lake_reads import reference_profile

    spec = specs["credit-scoring-ai"]
    lake = Lake(str(tmp_path / "lake"))
    reference = Lake(str(world.lake_root)).read_table("reference", {"model": spec.name})
    lake.write_table("reference", {"model": spec.name}, reference)
    first = reference_profile(lake, spec)
    folder = pafs.FileSelector(lake.path("reference_profile", {"model": spec.name}, "x").rsplit("/", 1)[0])
    assert len(lake.fs.get_file_info(folder)) == 1 and first.rows == reference.num_rows
    again = reference_profile(lake, spec)
    assert np.array_equal(again.numeric["car_value"].sorted_values, first.numeric["car_value"].sorted_values)
    assert len(lake.fs.get_file_info(folder)) == 1  # read back, not built again
    lake.write_table("reference", {"model": spec.name}, reference.slice(0, 1000))  # a new training set
    assert reference_profile(lake, spec).rows == 1000


def test_a_labels_file_rewritten_after_the_snapshot_read_it_is_stale_whatever_its_mtime(world, tmp_path):
    """The snapshot records which version of each labels file it read; an older modification time
    (a copy that kept its times, a write racing the snapshot) does not hide a new version."""
    import os

    from tests.conftest import copy_world

    copy = copy_world(world, tmp_path / "world")
    lake = Lake(str(copy.lake_root))
    defs = build_definitions(settings_for(copy))
    sensor = defs.resolve_sensor_def("late_labels_sensor")
    labels = {"model": "credit-scoring-ai", "date": DAYS[3].isoformat()}
    with dg.instance_for_test() as instance:
        assert _run(defs, instance, _model_assets(CREDIT), DAY).success
        first = sensor.evaluate_tick(_context(instance, defs))
        assert first.run_requests == []  # the snapshot read the current labels
        table = lake.read_table("labels", labels)
        before = os.stat(lake.path("labels", labels))
        lake.write_table("labels", labels, table.slice(0, table.num_rows - 10))  # a corrected delivery
        os.utime(lake.path("labels", labels), ns=(before.st_atime_ns, before.st_mtime_ns - 10**9))
        again = sensor.evaluate_tick(_context(instance, defs, first.cursor))
        assert [r.partition_key for r in again.run_requests] == [DAY]


def test_labels_are_cast_to_outcome_codes_and_a_bad_file_names_itself(specs, world, tmp_path):
    from rai_pipelines.monitoring.labels import labels_for_day, read_label_file

    spec = specs["credit-scoring-ai"]
    lake = Lake(str(tmp_path / "lake"))
    first, second = ({"model": spec.name, "date": d.isoformat()} for d in DAYS[1:3])
    lake.write_table("labels", first, pa.table({"request_id": [1, 2], "label": [1.0, 0.0]}))  # ids as ints
    lake.write_table("labels", second, pa.table({"request_id": ["3"], "label": [True]}))
    table, read = labels_for_day(lake, spec, DAY)
    assert table.to_pylist() == [
        {"request_id": "1", "label": 1},
        {"request_id": "2", "label": 0},
        {"request_id": "3", "label": 1},
    ]
    assert set(read) == {DAYS[1].isoformat(), DAYS[2].isoformat()}
    assert labels_for_day(lake, spec, DAYS[3].isoformat())[0] is None  # arrived before that day
    lake.write_table("labels", second, pa.table({"request_id": ["3"], "label": [0.5]}))
    with pytest.raises(BadInputError, match=r"date=2023-11-07/data\.parquet: column label must hold whole numbers"):
        read_label_file(lake, second)
    lake.write_bytes("labels", second, "data.parquet", b"not parquet")
    with pytest.raises(BadInputError, match=r"date=2023-11-07/data\.parquet: not a readable Parquet file"):
        read_label_file(lake, second)


def test_cost_per_inference_divides_by_every_request_not_the_sampled_snapshot(specs, world, tmp_path):
    """A snapshot keeps at most sampling.max_rows rows a day; the governance facts count the day's
    requests in the inference log itself, so sampling never inflates a cost per inference."""
    from tests.conftest import copy_world

    private = copy_world(world, tmp_path / "world")
    registry = tmp_path / "models"
    registry.mkdir()
    shutil.copy(specs["employment-screening-ai"].source, registry)
    (registry / "sampled").mkdir()
    sampled = _declaration(registry / "sampled", specs["credit-scoring-ai"], sampling={"max_rows": 500})
    shutil.move(sampled, registry / sampled.name)
    settings = replace(settings_for(private), model_registry_dir=str(registry))
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("daily_governance_job").execute_in_process(
            partition_key=DAY, instance=instance, run_config=QUIET
        )
    assert result.success
    lake = Lake(str(private.lake_root))
    log = lake.read_table("inference_logs", {"model": "credit-scoring-ai", "date": DAY}).to_pandas()
    requests = log["model_version"].value_counts().to_dict()
    assert sum(requests.values()) > 500  # more traffic than the snapshot keeps
    assert lake.read_table("feature_snapshots", {"model": "credit-scoring-ai", "date": DAY}).num_rows == 500
    day_facts = lake.read_table("governance_facts", {"model": "credit-scoring-ai", "date": DAY}).to_pylist()
    facts = [r for r in day_facts if r["model_name"] == "credit-scoring-ai"]
    assert {r["model_version"]: r["inference_count"] for r in facts} == requests
    for row in facts:
        assert row["cost_per_inference_usd"] == pytest.approx(row["daily_cost_usd"] / requests[row["model_version"]])
