"""Cost anomalies per scope with root causes, on small ledgers of daily cost with a weekly pattern
(weekdays at full cost, weekends at 45%), noise and known injected changes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.costs.anomalies import AnomalyConfig, detect_anomalies, replay

MONDAY = date(2025, 3, 3)
CAUSES = ["service", "account", "region", "sku", "tag"]
WEEKEND = 0.45


@dataclass(frozen=True)
class Line:
    model: str
    service: str
    sku: str
    base: float  # a weekday's cost
    account: str = "111122223333"
    region: str = "us-east-1"
    tag: str | None = "team=risk"
    weekend: float = WEEKEND  # the weekend's cost over a weekday's


FRAUD = [
    Line("fraud-detector", "AmazonSageMaker", "ml.g5.xlarge", 300.0),
    Line("fraud-detector", "AmazonSageMaker", "ml.m5.large", 120.0, region="eu-west-1"),
    Line("fraud-detector", "AmazonS3", "Requests-Tier1", 40.0),
    Line("fraud-detector", "AmazonS3", "TimedStorage", 60.0, tag=None),
    Line("fraud-detector", "AmazonCloudWatch", "MetricMonitorUsage", 80.0, account="444455556666"),
]


def ledger(lines, days, first=MONDAY, seed=0, change=None, start_day=None) -> pd.DataFrame:
    """One row per line and day: base x weekly pattern x 4% noise, plus `change(day, line)` (an
    amount added to that line's cost that day). `start_day` maps a model to its first day."""
    rng = np.random.default_rng(seed)
    rows = []
    for d in range(days):
        day = first + timedelta(days=d)
        for line in lines:
            if start_day and d < start_day.get(line.model, 0):
                continue
            cost = line.base * (line.weekend if day.weekday() >= 5 else 1.0) * rng.lognormal(0, 0.04)
            cost += change(d, line) if change else 0.0
            rows.append(
                {
                    "date": day,
                    "model": line.model,
                    "service": line.service,
                    "account": line.account,
                    "region": line.region,
                    "sku": line.sku,
                    "tag": line.tag,
                    "cost": round(cost, 4),
                }
            )
    return pd.DataFrame(rows)


def detect(costs, **kwargs):
    return detect_anomalies(costs, scope=["model"], causes=CAUSES, **kwargs)


def day(d: int) -> date:
    return MONDAY + timedelta(days=d)


def test_spike_is_found_on_its_day_with_root_causes_ranked_by_cost():
    def spike(d, line):  # day 30, a Tuesday: the S3 requests SKU +400, CloudWatch +150
        if d == 30 and line.sku == "Requests-Tier1":
            return 400.0
        return 150.0 if d == 30 and line.service == "AmazonCloudWatch" else 0.0

    report = detect(ledger(FRAUD, 42, change=spike))
    assert len(report.events) == 1
    event = report.events[0]
    assert (event.start, event.raised_on, event.last_day, event.status) == (day(30), day(30), day(30), "closed")
    assert event.scope == {"model": "fraud-detector"}
    assert event.impact == pytest.approx(550, rel=0.1)
    assert event.relative_impact == pytest.approx(550 / 600, rel=0.15)
    causes = [(c.label(), c.impact) for c in event.root_causes]
    # the SKU that spiked, not its service (which also holds a quiet SKU) nor the account holding both
    assert causes[0][0] == "sku=Requests-Tier1" and causes[0][1] == pytest.approx(400, rel=0.1)
    assert causes[1][0] == "service=AmazonCloudWatch" and causes[1][1] == pytest.approx(150, rel=0.15)
    assert [c.label() for c in event.root_causes][:2] == ["sku=Requests-Tier1", "service=AmazonCloudWatch"]
    assert abs(event.root_causes[0].share) > abs(event.root_causes[1].share)
    assert "spike" in event.note


def test_weekly_seasonality_does_not_alert_even_on_a_young_scope():
    # the recommender retrains on weekends (2.5 times a weekday's cost); the others dip to 45%
    batch = [
        Line("recommender", "AmazonSageMaker", "ml.p3.2xlarge-Training", 200.0, weekend=2.5),
        Line("recommender", "AmazonS3", "TimedStorage", 20.0),
    ]
    young = [
        Line("churn-model", "AmazonEC2", "BoxUsage:m5.large", 90.0),
        Line("churn-model", "AmazonS3", "Storage", 30.0),
    ]
    # churn-model starts on a Friday: its first weekend comes on days 2 and 3 of its history
    costs = ledger(FRAUD + batch + young, 63, seed=3, start_day={"churn-model": 46})
    report = detect(costs, config=AnomalyConfig(direction="both"))  # neither the dips nor the peaks
    assert report.events == ()
    assert [s.alerting for s in report.statuses] == [True, True, True]
    notes = {s.scope["model"]: s.note for s in report.statuses}
    assert "on its own weekly profile" in notes["recommender"]
    assert "its weekly profile is not known yet" in notes["churn-model"]


def test_a_level_shift_is_one_event_that_closes_once_the_new_level_is_the_baseline():
    def shift(d, line):  # from day 25 (a Friday) on, the g5 SKU costs 80% more, weekends included
        if d >= 25 and line.sku == "ml.g5.xlarge":
            return 0.8 * line.base * (WEEKEND if day(d).weekday() >= 5 else 1.0)
        return 0.0

    costs = ledger(FRAUD, 70, change=shift, seed=1)
    report = detect(costs)
    assert len(report.events) == 1
    event = report.events[0]
    assert (event.start, event.raised_on, event.status) == (day(25), day(25), "closed")
    config = AnomalyConfig()  # accepted after 7 flagged days; a weekend day may go unflagged in between
    assert config.level_shift_days <= event.days <= config.level_shift_days + config.max_gap_days
    assert "new level became the baseline" in event.note
    assert event.root_causes[0].label() == "sku=ml.g5.xlarge"
    # day by day, the alert is raised once, on the first day, and never again
    raised = replay(costs, scope=["model"], causes=CAUSES, start=day(20))
    assert [(e.start, e.raised_on, e.status) for e in raised] == [(day(25), day(25), "open")]


def test_opposite_changes_that_cancel_in_the_total_are_found_with_both_causes():
    def swap(d, line):  # days 40-43: 250 a day moves from SageMaker's g5 to CloudWatch
        if 40 <= d <= 43:
            factor = WEEKEND if day(d).weekday() >= 5 else 1.0
            return {"ml.g5.xlarge": -250.0, "MetricMonitorUsage": 250.0}.get(line.sku, 0.0) * factor
        return 0.0

    report = detect(ledger(FRAUD, 56, change=swap))
    assert len(report.events) == 1
    event = report.events[0]
    assert (event.start, event.raised_on) == (day(40), day(40))
    assert abs(event.impact) < 0.05 * event.expected_cost  # the total did not move
    assert event.detected_in != "total"
    top = {c.label(): c.impact for c in event.root_causes[:2]}
    assert set(top) == {"service=AmazonCloudWatch", "sku=ml.g5.xlarge"}
    assert top["service=AmazonCloudWatch"] > 0 > top["sku=ml.g5.xlarge"]
    assert "the scope's total moved" in event.note and "offset by" in event.note


def test_too_little_history_gives_no_alarm_and_the_status_says_why():
    new = [Line("new-model", "AmazonBedrock", "Claude-input-tokens", 50.0)]
    costs = ledger(FRAUD, 30, seed=2)
    # new-model has two days: a second day at ten times the first is still no alarm
    costs = pd.concat([costs, ledger(new, 2, first=day(28), change=lambda d, _: 450.0 * d)], ignore_index=True)
    report = detect(costs)
    assert report.events == ()
    status = next(s for s in report.statuses if s.scope == {"model": "new-model"})
    assert (status.alerting, status.days_of_history) == (False, 2)
    assert status.note == "no alarm yet: 2 days of history, alerting needs 3"
    assert "no alarm yet" in report.markdown()
    # on day 3 of its history it can alarm
    third = ledger(new, 3, first=day(28), change=lambda d, _: 450.0 * (d == 2))
    report = detect(pd.concat([ledger(FRAUD, 31, seed=2), third], ignore_index=True))
    assert [(e.scope["model"], e.start, e.days_of_history) for e in report.events] == [("new-model", day(30), 3)]


@pytest.mark.parametrize(
    ("lines", "amount", "why"),
    [
        ([Line("tiny-model", "AWSLambda", "Requests", 12.0)], 8.0, "8 is 67% but below 10 in absolute"),
        (FRAUD, 90.0, "90 is above 10 but 15% of 600"),
    ],
)
def test_an_event_below_either_threshold_does_not_alert(lines, amount, why):
    def spike(d, line):
        return amount if d == 30 and line is lines[0] else 0.0

    costs = ledger(lines, 42, change=spike, seed=5)
    assert detect(costs).events == (), why
    # the same change alerts once both thresholds are below it: the test can fail
    lower = AnomalyConfig(min_impact_absolute=5.0, min_impact_relative=0.1, z_threshold=3.0)
    assert [e.start for e in detect(costs, config=lower).events] == [day(30)]


def test_replay_raises_each_event_as_detection_on_that_day_saw_it():
    def changes(d, line):
        if d == 22 and line.service == "AmazonS3":
            return 300.0
        return 200.0 if d >= 31 and line.sku == "ml.m5.large" and day(d).weekday() < 5 else 0.0

    costs = ledger(FRAUD, 45, change=changes, seed=4)
    raised = replay(costs, scope=["model"], causes=CAUSES, start=day(15))
    assert [e.raised_on for e in raised] == [day(22), day(31)]
    for d in range(15, 45):
        seen = detect(costs, as_of=day(d))
        new = [e.to_dict() for e in seen.events if e.raised_on == day(d)]
        assert new == [e.to_dict() for e in raised if e.raised_on == day(d)], d


def test_report_rows_and_pyarrow_input_with_decimal_costs():
    def spike(d, line):
        return 500.0 if d == 30 and line.sku == "TimedStorage" else 0.0

    frame = ledger(FRAUD, 35, change=spike)
    frame["cost"] = [Decimal(str(c)) for c in frame["cost"]]
    table = pa.Table.from_pandas(frame, preserve_index=False)
    assert pa.types.is_decimal(table.schema.field("cost").type)
    assert pa.types.is_date32(table.schema.field("date").type)
    report = detect(table, currency="EUR")
    (row,) = report.to_rows()
    assert row["model"] == "fraud-detector" and row["start"] == "2025-04-02" and row["status"] == "closed"
    assert row["impact"].startswith("+") and row["impact"].endswith("EUR")
    assert row["root causes"].startswith("sku=TimedStorage +")
    assert "| model | start |" in report.markdown()
    event = report.events[0].to_dict()
    assert event["root_causes"][0]["value"] == "TimedStorage" and event["start"] == "2025-04-02"
    assert len(event["event_id"]) == 16
    assert json.loads(json.dumps(report.to_dict()))["events"][0]["event_id"] == event["event_id"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({(7, "cost"): float("nan")}, "costs row 7: cost is nan"),
        ({(3, "cost"): "12.5"}, "costs row 3: cost '12.5' is not an amount"),
        ({(4, "date"): "2025-13-01"}, "costs row 4: date '2025-13-01' is not a date"),
        ({(5, "service"): 42}, "costs row 5: service 42 is not a string"),
    ],
)
def test_bad_rows_are_refused_naming_row_and_field(change, message):
    frame = ledger(FRAUD, 10)
    frame["date"] = frame["date"].map(date.isoformat)
    with pytest.raises(BadInputError, match=message.replace("(", r"\(")):
        detect(_changed(frame, change))


def test_a_scope_of_several_columns_with_unattributed_cost():
    def spike(d, line):
        return 300.0 if d == 33 and line.service == "AmazonS3" else 0.0

    frame = ledger(FRAUD, 40, change=spike).rename(columns={"model": "workload"})
    frame["team"] = np.where(frame["service"] == "AmazonS3", None, "risk")  # S3 carries no team tag
    report = detect_anomalies(frame, scope=["workload", "team"], causes=["service", "sku"])
    assert [s.scope for s in report.statuses] == [
        {"workload": "fraud-detector", "team": None},
        {"workload": "fraud-detector", "team": "risk"},
    ]
    (event,) = report.events
    assert event.scope == {"workload": "fraud-detector", "team": None} and event.start == day(33)
    assert event.to_row()["team"] == "(none)"


def _changed(frame: pd.DataFrame, change: dict) -> pd.DataFrame:
    frame = frame.copy()
    for (row, column), value in change.items():
        frame[column] = frame[column].astype(object)
        frame.at[row, column] = value
    return frame


def test_duplicate_rows_and_missing_columns_are_refused():
    frame = ledger(FRAUD, 10)
    doubled = pd.concat([frame, frame.iloc[[12]]], ignore_index=True)
    with pytest.raises(BadInputError, match=f"costs row {len(frame)}: duplicate of an earlier row"):
        detect(doubled)
    with pytest.raises(BadInputError, match="missing column"):
        detect(frame.drop(columns=["region"]))
    with pytest.raises(BadInputError, match="named twice"):
        detect_anomalies(frame, scope=["model"], causes=["service", "model"])


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"min_history_days": -1}, "min_history_days"),
        ({"min_impact_absolute": float("nan")}, "min_impact_absolute"),
        ({"min_impact_relativ": 0.3}, "min_impact_relativ"),  # a typo must not fall back to the default
        ({"direction": "up"}, "direction"),
        ({"level_shift_days": "7"}, "level_shift_days"),  # no coercion from strings
    ],
)
def test_bad_config_is_refused_naming_the_field(document, field):
    with pytest.raises(BadInputError, match=f"anomaly config: {field}"):
        AnomalyConfig.from_mapping(document)
    with pytest.raises(BadInputError, match=field):
        AnomalyConfig(**document)
    with pytest.raises(BadInputError, match=field):
        detect(ledger(FRAUD, 5), config=document)
