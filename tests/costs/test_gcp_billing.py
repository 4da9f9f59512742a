"""The GCP billing export as a cost source: one day out of the detailed export in BigQuery (bqemulator)
and out of its Parquet copy in Cloud Storage (gcp-storage-emulator), both real servers on loopback,
netted credits, attribution by labels, reconciliation to the cent against an independent witness,
bad input refused by table or file, row and field, a restatement seen by the fingerprint, and the
FinOps Foundation's FOCUS validator on the resulting ledger."""

from __future__ import annotations

import io
import json
import random
import zlib
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.costs.conformance import validate_ledger
from rai_pipelines.costs.ledger_schema import LEDGER_SCHEMA, SourceFile
from rai_pipelines.costs.sources.gcp_bigquery import BigQueryBillingExportReader, bigquery_day_sql, billing_export_table
from rai_pipelines.costs.sources.gcp_billing import gcp_daily_totals, gcp_to_focus
from rai_pipelines.costs.sources.gcp_storage import GcsBillingExportReader
from tests.conftest import one_currency
from tests.gcp_servers import PROJECT, bigquery_emulator, gcs_emulator  # noqa: F401 (session fixtures)

ACCOUNT = "01A2B3-C4D5E6-F7A8B9"
DATASET = "billing_export"
DAY = date(2023, 11, 5)
BUCKET = "rai-billing-copy"
CENT = Decimal("0.01")

COMPUTE = {"id": "6F81-5844-456A", "description": "Compute Engine"}
VERTEX = {"id": "C7E2-9256-1C43", "description": "Vertex AI"}
STORAGE = {"id": "95FF-2EF5-5EA1", "description": "Cloud Storage"}
BIGQUERY = {"id": "24E6-581D-38E5", "description": "BigQuery"}
PROD = {
    "id": "rai-prod-serving",
    "number": "512345678901",
    "name": "RAI prod serving",
    "labels": [{"key": "environment", "value": "prod"}],
    "ancestry_numbers": "/123456789/512345678901/",
}
RESEARCH = {
    "id": "rai-research",
    "number": "598765432109",
    "name": "RAI research",
    "labels": [{"key": "team", "value": "research"}, {"key": "cost-center", "value": "cc-42"}],
    "ancestry_numbers": "/123456789/598765432109/",
}
SCORING = [
    {"key": "model-name", "value": "credit-scoring"},
    {"key": "model-version", "value": "v2"},
    {"key": "team", "value": "risk"},
    {"key": "app", "value": "credit-scoring-ai"},
]
EMBEDDER = [
    {"key": "model_name", "value": "llm-embedder"},
    {"key": "team", "value": "search"},
    {"key": "env", "value": "staging"},
]
CUD_ID = "2873261540193846271"

F = None  # google.cloud.bigquery.SchemaField, bound on first use (the import stays inside the tests)


def _schema(detailed: bool = True, drop: str = "") -> list:
    global F
    from google.cloud.bigquery import SchemaField as F  # noqa: N811

    def rec(name, *fields, mode="NULLABLE"):
        return F(name, "RECORD", mode=mode, fields=list(fields))

    kv = (F("key", "STRING"), F("value", "STRING"))
    fields = [
        F("billing_account_id", "STRING"),
        rec("service", F("id", "STRING"), F("description", "STRING")),
        rec("sku", F("id", "STRING"), F("description", "STRING")),
        F("usage_start_time", "TIMESTAMP"),
        F("usage_end_time", "TIMESTAMP"),
        rec(
            "project",
            F("id", "STRING"),
            F("number", "STRING"),
            F("name", "STRING"),
            rec("labels", *kv, mode="REPEATED"),
            F("ancestry_numbers", "STRING"),
        ),
        rec("labels", *kv, mode="REPEATED"),
        rec("system_labels", *kv, mode="REPEATED"),
        rec("location", F("location", "STRING"), F("country", "STRING"), F("region", "STRING"), F("zone", "STRING")),
        rec("tags", *kv, F("inherited", "BOOLEAN"), F("namespace", "STRING"), mode="REPEATED"),
        F("export_time", "TIMESTAMP"),
        F("cost", "FLOAT"),
        F("currency", "STRING"),
        F("currency_conversion_rate", "FLOAT"),
        rec(
            "usage",
            F("amount", "FLOAT"),
            F("unit", "STRING"),
            F("amount_in_pricing_units", "FLOAT"),
            F("pricing_unit", "STRING"),
        ),
        rec(
            "credits",
            F("name", "STRING"),
            F("amount", "FLOAT"),
            F("full_name", "STRING"),
            F("id", "STRING"),
            F("type", "STRING"),
            mode="REPEATED",
        ),
        rec("invoice", F("month", "STRING"), F("publisher_type", "STRING")),
        F("cost_type", "STRING"),
        rec("adjustment_info", F("id", "STRING"), F("description", "STRING"), F("mode", "STRING"), F("type", "STRING")),
        rec(
            "price",
            F("effective_price", "NUMERIC"),
            F("tier_start_amount", "NUMERIC"),
            F("unit", "STRING"),
            F("pricing_unit_quantity", "NUMERIC"),
        ),
        F("cost_at_list", "FLOAT"),
        F("transaction_type", "STRING"),
        F("seller_name", "STRING"),
        # A field this code does not know (Google adds fields over time): it must be ignored.
        rec("consumption_model", F("id", "STRING"), F("description", "STRING")),
    ]
    if detailed:
        fields.insert(9, rec("resource", F("name", "STRING"), F("global_name", "STRING")))
    return [f for f in fields if f.name != drop]


def _ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _row(day: date, hour: int, service, sku_id, sku, project, cost, *, labels=(), credits=(), cost_type="regular",
         usage=(1.0, "hour"), resource=None, zone="us-central1-a", hours=1, **extra) -> dict:  # fmt: skip
    start = datetime(day.year, day.month, day.day, hour, tzinfo=timezone.utc)
    amount, unit = usage
    row = {
        "billing_account_id": ACCOUNT,
        "service": service,
        "sku": {"id": sku_id, "description": sku},
        "usage_start_time": _ts(start),
        "usage_end_time": _ts(start + timedelta(hours=hours)),
        "project": project,
        "labels": list(labels),
        "system_labels": [{"key": "compute.googleapis.com/machine_spec", "value": "n2-standard-8"}]
        if service is COMPUTE
        else [],
        "location": {
            "location": zone[:-2] if zone else "us",
            "country": "US",
            "region": zone[:-2] if zone else None,
            "zone": zone,
        },
        "tags": [],
        "export_time": _ts(start + timedelta(hours=5)),
        "cost": cost,
        "currency": "USD",
        "currency_conversion_rate": 1.0,
        "usage": {
            "amount": amount * 3600 if unit == "hour" else amount,
            "unit": "seconds" if unit == "hour" else unit,
            "amount_in_pricing_units": amount,
            "pricing_unit": unit,
        },
        "credits": list(credits),
        "invoice": {"month": f"{day:%Y%m}", "publisher_type": "GOOGLE"},
        "cost_type": cost_type,
        "price": {
            "effective_price": str(round(cost / amount, 6)) if amount else "0",
            "tier_start_amount": "0",
            "unit": unit,
            "pricing_unit_quantity": "1",
        },
        "cost_at_list": round(cost * 1.1, 6),
        "transaction_type": "GOOGLE",
        "seller_name": "Google",
        "consumption_model": {"id": "D2C2-2D7C-9F62", "description": "Default"},
        **extra,
    }
    if resource:
        instance = zlib.crc32(resource.encode())
        global_name = f"//compute.googleapis.com/projects/{project['id']}/zones/{zone}/instances/{instance}"
        row["resource"] = {"name": resource, "global_name": global_name}
    return row


def _credit(kind: str, amount: float, **extra) -> dict:
    names = {
        "SUSTAINED_USAGE_DISCOUNT": "Sustained Usage Discount",
        "COMMITTED_USAGE_DISCOUNT": "Committed use discount: CPU",
        "PROMOTION": "Free trial and promotional credits",
        "FREE_TIER": "Free tier",
    }
    return {
        "name": names[kind],
        "amount": amount,
        "full_name": extra.get("full_name"),
        "id": extra.get("id", f"{kind.lower()}-1"),
        "type": kind,
    }


def export_rows(day: date, seed: int = 7) -> list[dict]:
    """One day of a realistic detailed export: compute with sustained-use and committed-use credits, a
    commitment fee, Vertex AI and GPUs attributed by labels, unlabelled storage with a promotion,
    BigQuery in the free tier, and (on every day) a tax row and an adjustment."""
    rnd = random.Random(f"{seed}-{day}")
    rows = []
    for hour in (0, 7, 13, 23):
        core, ram = round(rnd.uniform(0.2, 0.4), 6), round(rnd.uniform(0.05, 0.09), 6)
        rows += [
            _row(day, hour, COMPUTE, "2B62-C0A1-C1D4", "N2 Instance Core running in Americas", PROD, core,
                 labels=SCORING, credits=[_credit("SUSTAINED_USAGE_DISCOUNT", -round(core * 0.2, 6))],
                 resource="scoring-node-1"),
            _row(day, hour, COMPUTE, "4E3C-7A40-6F8D", "N2 Instance Ram running in Americas", PROD, ram,
                 labels=SCORING, credits=[_credit("SUSTAINED_USAGE_DISCOUNT", -round(ram * 0.2, 6))],
                 resource="scoring-node-1", usage=(32.0, "gibibyte hour")),
            _row(day, hour, COMPUTE, "2B62-C0A1-C1D4", "N2 Instance Core running in Americas", RESEARCH, core,
                 credits=[_credit("COMMITTED_USAGE_DISCOUNT", -core, id=CUD_ID,
                                  full_name="Commitment v1: N2 Cpu in Americas for 1 Year")],
                 resource="research-vm"),
            _row(day, hour, COMPUTE, "39F5-1E3F-2B6A", "Nvidia Tesla T4 GPU running in Americas", RESEARCH,
                 round(rnd.uniform(0.3, 0.4), 6), labels=EMBEDDER, resource="embedder-gpu"),
            _row(day, hour, VERTEX, "8A2E-41D3-B8E2", "Vertex AI: Online/Batch Prediction N1 Predefined Instance Core",
                 PROD, round(rnd.uniform(0.03, 0.05), 6), labels=SCORING, zone="us-central1-b"),
        ]  # fmt: skip
    rows += [
        _row(day, 0, COMPUTE, "1DCF-54A1-1B49", "Commitment v1: N2 Cpu in Americas for 1 Year", RESEARCH, 5.472,
             usage=(24.0, "hour"), hours=24),
        _row(day, 0, STORAGE, "E5F0-6A5B-5F49", "Standard Storage US Multi-region", RESEARCH, 1.254321,
             credits=[_credit("PROMOTION", -0.5, id="promo-2023")], usage=(54.53, "gibibyte month"), zone=None,
             hours=24),
        _row(day, 3, BIGQUERY, "3362-E469-6BEF", "Analysis", PROD, 0.0625,
             credits=[_credit("FREE_TIER", -0.0625)], usage=(0.01, "tebibyte"), zone=None),
        _row(day, 0, {"id": "", "description": "Invoice"}, "", "Tax", PROD, 2.34, cost_type="tax", usage=(0, ""),
             zone=None, hours=24, cost_at_list=None),
        _row(day, 7, COMPUTE, "2B62-C0A1-C1D4", "N2 Instance Core running in Americas", PROD, -0.75,
             cost_type="adjustment", labels=SCORING, zone=None, cost_at_list=None,
             adjustment_info={"id": f"adj-{day:%Y%m%d}", "description": "Correction of N2 core usage",
                              "mode": "PARTIAL_CORRECTION", "type": "USAGE_CORRECTION"}),
    ]  # fmt: skip
    return rows


def expected_net(rows: list[dict]) -> Decimal:
    """The test's own sum: cost plus credits, from the generated values."""
    return sum(
        (Decimal(str(r["cost"])) + sum((Decimal(str(c["amount"])) for c in r["credits"]), Decimal(0)) for r in rows),
        Decimal(0),
    )


DAYS = (DAY - timedelta(days=1), DAY, DAY + timedelta(days=1))
ROWS = {d: export_rows(d) for d in DAYS}


def _create(client, table: str, rows: list[dict], detailed: bool = True, drop: str = ""):
    from google.cloud import bigquery

    spec = bigquery.Table(f"{PROJECT}.{DATASET}.{table}", schema=_schema(detailed, drop))
    spec.time_partitioning = bigquery.TimePartitioning(type_=bigquery.TimePartitioningType.DAY)
    client.delete_table(spec, not_found_ok=True)
    client.create_table(spec)
    if rows:
        rows = [{k: v for k, v in r.items() if k != drop and (detailed or k != "resource")} for r in rows]
        errors = client.insert_rows_json(f"{PROJECT}.{DATASET}.{table}", rows)
        assert errors == [], errors


@pytest.fixture(scope="module")
def bq(bigquery_emulator):  # noqa: F811
    client = bigquery_emulator.client()
    client.create_dataset(DATASET, exists_ok=True)
    table = billing_export_table(ACCOUNT, detailed=True)
    _create(client, table, [r for d in DAYS for r in ROWS[d]])
    return {"client": client, "table": table, "endpoint": bigquery_emulator.endpoint, "server": bigquery_emulator}


def _reader(bq, **kw) -> BigQueryBillingExportReader:
    return BigQueryBillingExportReader(PROJECT, DATASET, kw.pop("account", ACCOUNT), endpoint=bq["endpoint"], **kw)


@pytest.fixture(scope="module")
def bq_ledger(bq):
    (source,) = _reader(bq, detailed=True).read(DAY)
    return source, gcp_to_focus(source, DAY)


def test_the_query_filters_one_day_unnests_credits_and_keeps_labels_as_arrays(bq):
    from google.cloud.bigquery import SchemaField

    from rai_pipelines.costs.sources.gcp_bigquery import bigquery_paths

    paths = bigquery_paths([SchemaField(f.name, f.field_type, mode=f.mode, fields=f.fields) for f in _schema()])
    sql = bigquery_day_sql("p.d.t", paths)
    assert "_PARTITIONTIME >= @partitions_from" in sql
    assert "e.usage_start_time >= @day_start" in sql and "e.usage_start_time < @day_end" in sql
    assert "(SELECT SUM(CAST(c.amount AS NUMERIC(38, 9))) FROM UNNEST(e.credits) AS c)" in sql
    assert "e.project.labels AS project_labels" in sql and "e.system_labels AS system_labels" in sql
    assert "consumption_model" not in sql  # an unknown field is not selected
    (source,) = _reader(bq, detailed=True).read(DAY)
    table = source.table
    assert table.num_rows == len(ROWS[DAY])
    starts = table.column("usage_start_time").to_pylist()
    assert {s.date() for s in starts} == {DAY}  # rows of the adjacent days stay in BigQuery
    assert pa.types.is_list(table.schema.field("labels").type)
    assert pa.types.is_decimal(table.schema.field("credits_total").type)
    sums = {(r["sku_id"], r["project_id"], r["usage_start_time"].hour): r["credits_total"] for r in table.to_pylist()}
    assert sums[("2B62-C0A1-C1D4", "rai-research", 13)] == Decimal(str(ROWS[DAY][12]["credits"][0]["amount"]))


def test_one_day_from_bigquery_is_a_reconciled_focus_ledger(bq_ledger):
    source, ledger = bq_ledger
    assert ledger.schema == LEDGER_SCHEMA
    assert ledger.num_rows == len(ROWS[DAY]) == 25
    rows = ledger.to_pylist()
    total = sum((r["BilledCost"] for r in rows), Decimal(0))
    witness = one_currency(gcp_daily_totals(source))
    assert set(witness) == {DAY.isoformat()}
    assert total == witness[DAY.isoformat()] == expected_net(ROWS[DAY])
    assert total.quantize(CENT) == expected_net(ROWS[DAY]).quantize(CENT)
    assert sum((r["ContractedCost"] for r in rows), Decimal(0)) == sum(Decimal(str(r["cost"])) for r in ROWS[DAY])
    assert validate_ledger(ledger).passed
    assert {r["ChargePeriodStart"].date() for r in rows} == {DAY}
    assert {r["x_SourceProvider"] for r in rows} == {"gcp"} and {r["ProviderName"] for r in rows} == {"Google Cloud"}
    # FOCUS 1.3: Google's own services, run on Google Cloud
    assert {(r["ServiceProviderName"], r["HostProviderName"]) for r in rows} == {("Google Cloud", "Google Cloud")}
    assert {r["x_SourceUri"] for r in rows} == {
        f"bigquery://{PROJECT}.{DATASET}.gcp_billing_export_resource_v1_01A2B3_C4D5E6_F7A8B9/usage_date=2023-11-05"
    }
    assert [r["x_SourceRowNumber"] for r in rows] == list(range(1, 26))
    assert len({r["x_SourceRowHash"] for r in rows}) == 25
    # Google invoices on Pacific time: November 2023 starts at 07:00 UTC (PDT) and ends at 08:00 UTC (PST).
    assert {(r["BillingPeriodStart"].isoformat(), r["BillingPeriodEnd"].isoformat()) for r in rows} == {
        ("2023-11-01T07:00:00+00:00", "2023-12-01T08:00:00+00:00")
    }


def test_credits_are_netted_on_their_row_as_googles_focus_view_does(bq_ledger):
    _, ledger = bq_ledger
    rows = ledger.to_pylist()
    assert {r["ChargeCategory"] for r in rows} == {"Usage", "Tax", "Adjustment"}  # no Credit rows
    sud = next(r for r in rows if r["SkuId"] == "2B62-C0A1-C1D4" and r["SubAccountId"] == "rai-prod-serving")
    assert sud["BilledCost"] == sud["EffectiveCost"] == sud["ContractedCost"] * Decimal("0.8")
    assert sud["ListCost"] > sud["ContractedCost"] and sud["PricingCategory"] == "Standard"
    cud = next(r for r in rows if r["SkuId"] == "2B62-C0A1-C1D4" and r["SubAccountId"] == "rai-research")
    assert cud["BilledCost"] == 0 and cud["ContractedCost"] > 0
    assert (cud["CommitmentDiscountId"], cud["CommitmentDiscountCategory"], cud["CommitmentDiscountStatus"]) == (
        CUD_ID,
        "Usage",
        "Used",
    )
    assert cud["CommitmentDiscountName"] == "Commitment v1: N2 Cpu in Americas for 1 Year"
    assert cud["PricingCategory"] == "Committed"
    fee = next(r for r in rows if r["SkuId"] == "1DCF-54A1-1B49")
    assert fee["PricingCategory"] == "Committed" and fee["CommitmentDiscountId"] is None
    storage = next(r for r in rows if r["ServiceName"] == "Cloud Storage")
    assert storage["BilledCost"] == Decimal("0.754321") and storage["ServiceCategory"] == "Storage"
    free = next(r for r in rows if r["ServiceName"] == "BigQuery")
    assert free["BilledCost"] == 0 and free["ContractedCost"] == Decimal("0.0625")
    tax = next(r for r in rows if r["ChargeCategory"] == "Tax")
    assert tax["BilledCost"] == Decimal("2.34") and tax["SkuId"] is None and tax["PricingQuantity"] is None
    assert tax["ChargeFrequency"] == "Recurring"
    adjustment = next(r for r in rows if r["ChargeCategory"] == "Adjustment")
    assert adjustment["ChargeClass"] == "Correction" and adjustment["BilledCost"] == Decimal("-0.75")
    assert adjustment["x_LineItemType"] == "adjustment"


def test_attribution_comes_from_resource_labels_then_project_labels(bq_ledger):
    _, ledger = bq_ledger
    rows = ledger.to_pylist()
    scoring = [r for r in rows if r["x_ModelName"] == "credit-scoring"]
    assert len(scoring) == 4 * 3 + 1  # compute core + ram + Vertex AI, and the adjustment
    assert {(r["x_ModelVersion"], r["x_Team"], r["x_Workload"], r["x_Environment"]) for r in scoring} == {
        ("v2", "risk", "credit-scoring-ai", "prod")  # environment inherited from the project's labels
    }
    embedder = [r for r in rows if r["x_ModelName"] == "llm-embedder"]
    assert len(embedder) == 4 and {(r["x_Team"], r["x_Environment"]) for r in embedder} == {("search", "staging")}
    unlabelled = next(r for r in rows if r["ServiceName"] == "Cloud Storage")
    assert (unlabelled["x_ModelName"], unlabelled["x_Team"]) == (None, "research")
    gpu = json.loads(embedder[0]["Tags"])
    assert gpu == {
        "env": "staging",
        "model_name": "llm-embedder",
        "project_label:cost_center": "cc-42",
        "project_label:team": "research",
        "system_label:compute.googleapis.com/machine_spec": "n2-standard-8",
        "team": "search",
    }
    assert embedder[0]["ResourceType"] == "compute.instances" and embedder[0]["ResourceName"] == "embedder-gpu"
    assert embedder[0]["RegionId"] == "us-central1" and embedder[0]["RegionName"] == "Iowa"


def _bad_table(bq, name: str, rows: list[dict], drop: str = "") -> str:
    _create(bq["client"], name, rows, drop=drop)
    return name


def test_bigquery_bad_input_is_refused_naming_table_row_and_field(bq):
    few = ROWS[DAY][:3]
    table = _bad_table(bq, "export_without_cost", few, drop="cost")
    with pytest.raises(BadInputError, match=r"bigquery://rai-billing\.billing_export\.export_without_cost: "
                       r"missing required billing export field\(s\) cost"):  # fmt: skip
        _reader(bq, table=table).read(DAY)
    lower = [dict(r) for r in few]
    lower[1] = {**lower[1], "currency": "usd"}
    table = _bad_table(bq, "export_bad_currency", lower)
    with pytest.raises(BadInputError, match=r"usage_date=2023-11-05 row 2: field currency = 'usd' is not an ISO 4217"):
        (source,) = _reader(bq, table=table).read(DAY)
        gcp_to_focus(source, DAY)
    with pytest.raises(BadInputError, match=r"export_nowhere: no such billing export table"):
        _reader(bq, table="export_nowhere").read(DAY)


def test_a_reader_configured_for_another_billing_account_refuses_the_rows(bq):
    reader = _reader(bq, account="00AAAA-BBBBBB-CCCCCC", table=bq["table"])
    (source,) = reader.read(DAY)
    with pytest.raises(BadInputError, match=r"row 1: field billing_account_id = '01A2B3-C4D5E6-F7A8B9' is not the "
                       r"configured billing account '00AAAA-BBBBBB-CCCCCC'"):  # fmt: skip
        gcp_to_focus(source, DAY)


def test_the_standard_export_without_resource_fields_reads_too(bq):
    table = billing_export_table(ACCOUNT)
    _create(bq["client"], table, ROWS[DAY][:5], detailed=False)
    (source,) = _reader(bq).read(DAY)  # the default table name is the standard export's
    ledger = gcp_to_focus(source, DAY)
    assert ledger.num_rows == 5 and set(ledger.column("ResourceId").to_pylist()) == {None}
    assert sum(ledger.column("BilledCost").to_pylist(), Decimal(0)) == expected_net(ROWS[DAY][:5])


# A credit for DAY's usage that Google exports three days later.
LATE = _row(DAY, 13, COMPUTE, "2B62-C0A1-C1D4", "N2 Instance Core running in Americas", PROD, 0.0,
            credits=[_credit("SUSTAINED_USAGE_DISCOUNT", -0.012345)], export_time="2023-11-08T04:00:00Z")  # fmt: skip


def test_a_restatement_changes_the_days_fingerprint_and_only_that_days(bq):
    table = "export_restated"
    _create(bq["client"], table, ROWS[DAY] + ROWS[DAY + timedelta(days=1)])
    reader = _reader(bq, table=table)
    before, other = reader.fingerprint(DAY), reader.fingerprint(DAY + timedelta(days=1))
    assert before == reader.fingerprint(DAY) and before[0][1] == 25
    assert bq["client"].insert_rows_json(f"{PROJECT}.{DATASET}.{table}", [LATE]) == []
    after = reader.fingerprint(DAY)
    assert after != before and after[0][1] == 26 and "2023-11-08 04:00:00" in after[0][2]
    assert reader.fingerprint(DAY + timedelta(days=1)) == other
    (source,) = reader.read(DAY)
    ledger = gcp_to_focus(source, DAY)
    total = sum(ledger.column("BilledCost").to_pylist(), Decimal(0))
    assert (
        total
        == one_currency(gcp_daily_totals(source))[DAY.isoformat()]
        == expected_net(ROWS[DAY]) - Decimal("0.012345")
    )


def test_a_copy_partitioned_on_export_time_with_a_bounded_export_lag(bq):
    """A copy partitioned on export_time, read with a 2-day lag bound: the late row exported three
    days after the usage stays out, as documented (`max_export_lag_days`)."""
    table = "export_by_export_time"
    _create(bq["client"], table, ROWS[DAY] + [LATE])
    bounded = _reader(bq, table=table, partition_column="export_time", max_export_lag_days=2)
    assert "e.export_time < @partitions_until" in bounded._day_sql()
    assert bounded.fingerprint(DAY)[0][1] == 25
    unbounded = _reader(bq, table=table, partition_column="export_time")
    assert unbounded.fingerprint(DAY)[0][1] == 26
    assert _reader(bq, table=table, partition_column=None).fingerprint(DAY)[0][1] == 26


# --- the copy in Cloud Storage ------------------------------------------------------------------


def export_data_sql(table_id: str, uri: str, day: date | None) -> str:
    """BigQuery's EXPORT DATA of one usage day (the README's statement); without a day, every row."""
    where = (
        f"WHERE _PARTITIONTIME >= TIMESTAMP('{day - timedelta(days=1)}')\n"
        f"  AND usage_start_time >= TIMESTAMP('{day}') AND usage_start_time < TIMESTAMP('{day + timedelta(days=1)}')"
        if day
        else ""
    )
    return (
        f"EXPORT DATA OPTIONS (uri = '{uri}', format = 'PARQUET', overwrite = true) AS\n"
        f"SELECT * FROM `{table_id}`\n{where}"
    )


@pytest.fixture(scope="module")
def gcs(bq, gcs_emulator):  # noqa: F811
    """The day exported by the BigQuery emulator's EXPORT DATA, uploaded to the Cloud Storage emulator;
    and a second copy holding every day's rows in the day's folder (as a copy by export partition would)."""
    client = gcs_emulator.client()
    bucket = client.create_bucket(BUCKET)
    table_id = f"{PROJECT}.{DATASET}.{bq['table']}"
    for prefix, day in (("gcp-billing", DAY), ("by-partition", None)):
        uri = f"gs://{BUCKET}/{prefix}/date={DAY}/*.parquet"
        bq["client"].query(export_data_sql(table_id, uri, day)).result()
        written = sorted((bq["server"].gcs_root / BUCKET / prefix).rglob("*.parquet"))
        assert [p.name for p in written] == ["000000000000.parquet"]
        for path in written:
            bucket.blob(path.relative_to(bq["server"].gcs_root / BUCKET).as_posix()).upload_from_filename(path)
    return {"client": client, "bucket": bucket, "endpoint": gcs_emulator.endpoint}


def _gcs_reader(gcs, prefix: str, account: str = ACCOUNT) -> GcsBillingExportReader:
    return GcsBillingExportReader(f"gs://{BUCKET}/{prefix}", account, endpoint=gcs["endpoint"], project=PROJECT)


def _comparable(ledger: pa.Table) -> list[tuple]:
    keep = [c for c in ledger.column_names if not c.startswith("x_Source")]
    return sorted(tuple(str(v) for v in row.values()) for row in ledger.select(keep).to_pylist())


def test_the_parquet_copy_in_cloud_storage_gives_the_same_ledger(gcs, bq_ledger):
    _, from_bigquery = bq_ledger
    reader = _gcs_reader(gcs, "gcp-billing")
    assert reader.file_paths(DAY) == [f"gs://{BUCKET}/gcp-billing/date=2023-11-05/000000000000.parquet"]
    assert reader.read(DAY + timedelta(days=1)) == []
    (source,) = reader.read(DAY)
    ledger = gcp_to_focus(source, DAY)
    assert ledger.schema == LEDGER_SCHEMA and validate_ledger(ledger).passed
    assert _comparable(ledger) == _comparable(from_bigquery)
    assert set(ledger.column("x_SourceUri").to_pylist()) == {reader.file_paths(DAY)[0]}
    assert one_currency(gcp_daily_totals(source)) == {DAY.isoformat(): expected_net(ROWS[DAY])}


def test_rows_of_adjacent_days_in_the_days_folder_are_left_out(gcs):
    (source,) = _gcs_reader(gcs, "by-partition").read(DAY)
    assert source.table.num_rows == 75
    ledger = gcp_to_focus(source, DAY)
    assert ledger.num_rows == 25
    assert {r.date() for r in ledger.column("ChargePeriodStart").to_pylist()} == {DAY}
    witness = one_currency(gcp_daily_totals(source))
    assert witness == {d.isoformat(): expected_net(ROWS[d]) for d in DAYS}
    assert sum(ledger.column("BilledCost").to_pylist(), Decimal(0)) == witness[DAY.isoformat()]


def test_a_rewritten_object_changes_the_fingerprint(gcs):
    reader = _gcs_reader(gcs, "gcp-billing")
    ((uri, size, generation),) = reader.fingerprint(DAY)
    blob = gcs["bucket"].blob(uri.split(f"{BUCKET}/", 1)[1])
    blob.upload_from_string(blob.download_as_bytes())  # the same bytes, written again
    ((_, size_after, generation_after),) = reader.fingerprint(DAY)
    assert size_after == size and generation_after != generation


def _base_day_table(gcs) -> pa.Table:
    data = gcs["bucket"].blob(f"gcp-billing/date={DAY}/000000000000.parquet").download_as_bytes()
    return pq.read_table(io.BytesIO(data))


def _as_text(table: pa.Table, column: str, row: int, value: str) -> pa.Table:
    values = [str(v) for v in table.column(column).to_pylist()]
    values[row] = value
    return table.set_column(table.column_names.index(column), column, pa.array(values, pa.string()))


@pytest.mark.parametrize(
    "case, damage, message",
    [
        ("corrupt", None, r"000000000000\.parquet: not a readable Parquet file"),
        ("no-cost", lambda t: t.drop_columns(["cost"]),
         r"000000000000\.parquet: missing required billing export field\(s\) cost"),
        ("no-invoice", lambda t: t.drop_columns(["invoice"]),
         r"missing required billing export field\(s\) invoice\.month"),
        ("cost", lambda t: _as_text(t, "cost", 1, "12,50"),
         r"000000000000\.parquet row 2: field cost = '12,50' is not a number"),
        ("date", lambda t: _as_text(t, "usage_start_time", 2, "2023-11-05 25:00"),
         r"row 3: field usage_start_time = '2023-11-05 25:00' is not a date-time"),
        ("currency", lambda t: _as_text(t, "currency", 0, "US$"), r"row 1: field currency = 'US\$' is not an ISO 4217"),
        ("account", lambda t: t, r"row 1: field billing_account_id = '01A2B3-C4D5E6-F7A8B9' is not the configured"),
    ],
)  # fmt: skip
def test_bad_parquet_in_cloud_storage_is_refused_naming_file_row_and_field(gcs, case, damage, message):
    prefix = f"bad/{case}"
    blob = gcs["bucket"].blob(f"{prefix}/date={DAY}/000000000000.parquet")
    if damage is None:
        blob.upload_from_string(b"PAR1 this is not parquet PAR1")
    else:
        out = io.BytesIO()
        pq.write_table(damage(_base_day_table(gcs)), out)
        blob.upload_from_string(out.getvalue())
    reader = _gcs_reader(gcs, prefix, account="00AAAA-BBBBBB-CCCCCC" if case == "account" else ACCOUNT)
    with pytest.raises(BadInputError, match=message):
        for source in reader.read(DAY):
            gcp_to_focus(source, DAY)


def test_a_local_folder_copy_reads_like_the_bucket(gcs, tmp_path):
    folder = tmp_path / "copy" / f"date={DAY}"
    folder.mkdir(parents=True)
    pq.write_table(_base_day_table(gcs), folder / "000000000000.parquet")
    reader = GcsBillingExportReader(str(tmp_path / "copy"), ACCOUNT)
    (source,) = reader.read(DAY)
    assert gcp_to_focus(source, DAY).num_rows == 25 and len(reader.fingerprint(DAY)) == 1
    # Export rows as read (nested) are flattened by the normalisation itself.
    nested = SourceFile(source.uri, _base_day_table(gcs), first_data_line=1, kind="gcp_storage", context=ACCOUNT)
    assert _comparable(gcp_to_focus(nested, DAY)) == _comparable(gcp_to_focus(source, DAY))
    assert gcp_daily_totals(nested) == gcp_daily_totals(source)


# --- the FinOps Foundation's validator ----------------------------------------------------------


def test_the_finops_foundations_validator_passes_on_the_gcp_ledger(bq_ledger, gcs, tmp_path):
    from tests.focus_validator import focus_validator_failures

    (source,) = _gcs_reader(gcs, "gcp-billing").read(DAY)
    ledger = pa.concat_tables([bq_ledger[1], gcp_to_focus(source, DAY)])
    assert set(ledger.column("x_SourceProvider").to_pylist()) == {"gcp"}
    result, failed = focus_validator_failures(ledger, tmp_path)
    # the export carries the invoice month, no invoice id
    assert failed == {"InvoiceId-C-005-C"}, result["failures"]


def test_the_cost_ledger_asset_reads_the_bigquery_export_through_the_resource(bq, tmp_path):
    import dagster as dg

    from rai_pipelines.core.lake import Lake
    from rai_pipelines.costs.sources.gcp_bigquery import GcpBigQueryExport
    from rai_pipelines.defs.costs.assets import build_cost_ledger
    from rai_pipelines.defs.costs.resources import BillingExportsResource
    from rai_pipelines.defs.partitions import daily_partitions
    from rai_pipelines.defs.resources import LakeResource

    cost_ledger = build_cost_ledger(daily_partitions("2023-01-01"))

    billing = BillingExportsResource.of(
        [
            GcpBigQueryExport(
                project=PROJECT, dataset=DATASET, billing_account_id=ACCOUNT, detailed=True, endpoint=bq["endpoint"]
            )
        ]
    )
    lake = LakeResource(
        root=str(tmp_path / "lake"),
        decision_log_dir=str(tmp_path / "log"),
        pseudonymisation_key_file=str(tmp_path / "k"),
    )
    result = dg.materialize([cost_ledger], partition_key=DAY.isoformat(), resources={"lake": lake, "billing": billing})
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {"reconciles_with_export": True, "focus_conformance": True}
    ledger = Lake(str(tmp_path / "lake")).read_table("cost_ledger", {"date": DAY.isoformat()})
    assert ledger.num_rows == len(ROWS[DAY])
    assert sum(ledger.column("BilledCost").to_pylist(), Decimal(0)) == expected_net(ROWS[DAY])
