"""On-premises GPU capacity priced by rates declared in Git lands in the same FOCUS ledger as the
cloud bills, attributed by workload labels, reconciled, and bad usage is refused by row."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.core.lake import Lake
from rai_pipelines.costs.conformance import validate_ledger
from rai_pipelines.costs.ledger import daily_totals, to_focus
from rai_pipelines.costs.sources.onprem import OnPremUsageReader, load_declaration
from rai_pipelines.settings import PROJECT_ROOT
from tests.conftest import one_currency

DECLARATION = PROJECT_ROOT / "costs" / "onprem.yaml"
DAY = date(2023, 11, 5)
TAGS = pa.map_(pa.string(), pa.string())


def _usage(rows: int = 48, pool: str = "a100-80g", quantity: float = 1.0) -> pa.Table:
    start = datetime(2023, 11, 5, tzinfo=timezone.utc)
    hours = [start + timedelta(hours=i % 24) for i in range(rows)]
    return pa.table(
        {
            "cluster": ["fra-gpu-1"] * rows,
            "node_pool": [pool] * rows,
            "resource_id": [f"node-{i % 3}/gpu-{i % 8}" for i in range(rows)],
            "usage_start": pa.array(hours, pa.timestamp("us", "UTC")),
            "usage_end": pa.array([h + timedelta(hours=1) for h in hours], pa.timestamp("us", "UTC")),
            "quantity": [quantity] * rows,
            "resource_tags": pa.array(
                [
                    [("app.kubernetes.io/name", "llm-embedder"), ("model-name", "llm-embedder"), ("team", "search")]
                    if i % 2
                    else [("team", "platform")]
                    for i in range(rows)
                ],
                TAGS,
            ),
        }
    )


def _reader(tmp_path, table: pa.Table) -> OnPremUsageReader:
    folder = tmp_path / "usage" / f"date={DAY.isoformat()}"
    folder.mkdir(parents=True)
    pq.write_table(table, folder / "data.parquet")
    return OnPremUsageReader(str(tmp_path / "usage"), str(DECLARATION))


def test_usage_times_declared_rates_is_a_conformant_reconciled_ledger(tmp_path):
    (source,) = _reader(tmp_path, _usage()).read(DAY)
    ledger = to_focus(source, DAY)
    assert ledger.num_rows == 48 * 3  # one row per usage record and cost component
    per_gpu_hour = Decimal("1.14") + Decimal("0.216") + Decimal("0.09")
    total = sum(ledger.column("BilledCost").to_pylist(), Decimal(0))
    assert total == 48 * per_gpu_hour == one_currency(daily_totals(source))[DAY.isoformat()]
    assert validate_ledger(ledger).passed
    rows = ledger.to_pylist()
    attributed = [r for r in rows if r["x_ModelName"] == "llm-embedder"]
    assert len(attributed) == 24 * 3 and {r["x_Team"] for r in attributed} == {"search"}
    assert {(r["ServiceProviderName"], r["HostProviderName"]) for r in rows} == {("On-premises", "On-premises")}
    assert {r["ProviderName"] for r in rows} == {"On-premises"} and {r["PricingUnit"] for r in rows} == {"GPU-Hours"}
    assert {r["x_LineItemType"] for r in rows} == {"amortised_purchase", "power", "support"}
    assert len({r["x_SourceRowHash"] for r in rows}) == len(rows)
    assert to_focus(source, DAY + timedelta(days=1)).num_rows == 0


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda t: t.set_column(1, "node_pool", pa.array(["h100"] * t.num_rows)), "row 1: node pool 'h100'"),
        (lambda t: t.set_column(5, "quantity", pa.array([-1.0] * t.num_rows)), "row 1: field quantity: -1.0 must be"),
        (lambda t: t.drop_columns(["usage_end"]), "missing usage column(s) usage_end"),
    ],
)
def test_bad_usage_is_refused_naming_the_file_and_row(tmp_path, damage, message):
    (source,) = _reader(tmp_path, damage(_usage(4))).read(DAY)
    with pytest.raises(
        BadInputError, match=r"date=2023-11-05/data\.parquet.*" + message.replace("(", r"\(").replace(")", r"\)")
    ):
        to_focus(source, DAY)


def test_a_declaration_with_an_unknown_cost_component_is_refused(tmp_path):
    bad = tmp_path / "onprem.yaml"
    bad.write_text(DECLARATION.read_text().replace("support: 0.09", "cooling: 0.09"))
    with pytest.raises(BadInputError, match=r"node_pools\[0\]\.rates: unknown component\(s\) cooling"):
        load_declaration(bad)


@pytest.mark.parametrize("unit", ["GPU-hour", "GPU-Hrs", "gpu hours"])
def test_a_declared_unit_must_be_in_focus_unit_format(tmp_path, unit):
    bad = tmp_path / "onprem.yaml"
    bad.write_text(DECLARATION.read_text().replace("unit: GPU-Hours", f"unit: {unit}"))
    with pytest.raises(BadInputError, match=rf"node_pools\[0\]\.unit: '{unit}' is not in FOCUS's UnitFormat"):
        load_declaration(bad)


def test_the_cost_ledger_asset_takes_cloud_and_on_premises_together(tmp_path, git_daemon, specs):
    from rai_pipelines.definitions import build_definitions
    from tests.conftest import make_world, settings_for

    world = make_world(tmp_path / "world", specs, days=[DAY])
    _reader(tmp_path, _usage())
    settings = settings_for(world)
    settings = type(settings)(**{**vars(settings), "onprem_usage_root": str(tmp_path / "usage")})
    defs = build_definitions(settings)
    job = defs.resolve_job_def("daily_governance_job")
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(
            partition_key=DAY.isoformat(), instance=instance, asset_selection=[dg.AssetKey("cost_ledger")]
        )
        checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {"reconciles_with_export": True, "focus_conformance": True}
    ledger = Lake(str(world.lake_root)).read_table("cost_ledger", {"date": DAY.isoformat()})
    assert set(ledger.column("x_SourceProvider").to_pylist()) == {"aws", "onprem"}


def test_the_finops_foundations_validator_passes_on_the_on_premises_ledger(tmp_path):
    from tests.focus_validator import focus_validator_failures

    (source,) = _reader(tmp_path, _usage()).read(DAY)
    result, failed = focus_validator_failures(to_focus(source, DAY), tmp_path)
    # on-premises capacity has no invoice
    assert failed == {"InvoiceId-C-005-C"}, result["failures"]
