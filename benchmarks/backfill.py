"""A backfill of the cost ledger as one Dagster run: --days daily partitions (default 90, from
2025-01-01: January, February and March) over a CUR 2.0 Data Export with one Parquet file and one
manifest per billing period, --rows-per-day line items a day (default 10,000,000, the issue's size).

    .venv/bin/python benchmarks/backfill.py [--days 90] [--rows-per-day 10000000] [--resources 40000]
        [--seed 0] [--workdir DIR]

The export is generated with benchmarks/ledger.py's generator (the same catalogue of resources, tags and
line item types; each day's rows moved onto that day, each file given its month's billing period). The
measured child, pinned to one CPU, materialises the `cost_ledger` asset of rai_pipelines for the whole
range in one run (BackfillPolicy.single_run: the run carries the range's first and last partition), with
the real resources: the export read through CurExportReader from the local folder, the lake a local folder.
Each billing period's file is read once for all its days, each day reconciled and checked before it is
published. It prints the run's wall time, rows per second and peak RSS. At the default size the export
alone is about 110 GB and the ledger about 70 GB; the script checks the free disk first and says so
when it is short, so run it with a smaller --rows-per-day on a small machine. The last line is one JSON
object with the figures.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from harness import SINGLE_THREAD_ENV, pin_to_one_core, run_in_workdir  # noqa: E402

FIRST_DAY = date(2025, 1, 1)
EXPORT = ("cur", "rai-cur")  # prefix, export name
# Measured on the generated data: the export's Parquet and the ledger's, per line item.
EXPORT_BYTES_PER_ROW, LEDGER_BYTES_PER_ROW = 123, 80


def _days(args) -> list[date]:
    return [FIRST_DAY + timedelta(days=i) for i in range(args.days)]


def _month_end(day: date) -> date:
    return (
        day.replace(year=day.year + 1, month=1, day=1) if day.month == 12 else day.replace(month=day.month + 1, day=1)
    )


def generate(args, root: Path) -> int:
    """One file and manifest per billing period, every day's rows moved onto that day."""
    import ledger as generator
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    catalogue = generator.Catalogue(args)
    rng = np.random.default_rng([args.seed, 1])
    by_month: dict[date, list[date]] = {}
    for day in _days(args):
        by_month.setdefault(day.replace(day=1), []).append(day)
    rows = 0
    prefix, name = EXPORT
    for month, days in by_month.items():
        period = f"BILLING_PERIOD={month:%Y-%m}"
        data = root / prefix / name / "data" / period / f"{name}-00001.snappy.parquet"
        data.parent.mkdir(parents=True, exist_ok=True)
        utc = pa.timestamp("ms", tz="UTC")
        start = pa.scalar(datetime(month.year, month.month, 1, tzinfo=timezone.utc), utc)
        end_day = _month_end(month)
        end = pa.scalar(datetime(end_day.year, end_day.month, 1, tzinfo=timezone.utc), utc)
        writer = None
        for day in days:
            left = args.rows_per_day
            shift = pa.scalar(timedelta(days=(day - generator.DAY).days), pa.duration("ms"))
            while left > 0:
                n = min(left, 1_000_000)
                table = generator.row_group(catalogue, rng, n, "double")
                for column in ("line_item_usage_start_date", "line_item_usage_end_date"):
                    table = table.set_column(
                        table.schema.get_field_index(column), column, pc.add(table.column(column), shift)
                    )
                for column, value in (("bill_billing_period_start_date", start), ("bill_billing_period_end_date", end)):
                    table = table.set_column(
                        table.schema.get_field_index(column), column, pa.array([value.as_py()] * n, value.type)
                    )
                if writer is None:
                    writer = pq.ParquetWriter(data, table.schema, compression="snappy")
                writer.write_table(table, row_group_size=n)
                left -= n
                rows += n
        writer.close()
        manifest = root / prefix / name / "metadata" / period / f"{name}-Manifest.json"
        manifest.parent.mkdir(parents=True, exist_ok=True)
        key = data.relative_to(root).as_posix()
        manifest.write_text(json.dumps({"dataFiles": [f"s3://rai-billing/{key}"]}))
    return rows


def measure(args, workdir: Path) -> None:
    cpu = pin_to_one_core()
    import dagster as dg

    from rai_pipelines.costs.sources.aws_cur import AwsCurExport
    from rai_pipelines.defs.costs.assets import build_cost_ledger
    from rai_pipelines.defs.costs.resources import BillingExportsResource
    from rai_pipelines.defs.partitions import daily_partitions
    from rai_pipelines.defs.resources import LakeResource

    cost_ledger = build_cost_ledger(daily_partitions(FIRST_DAY.isoformat()))

    days = _days(args)
    resources = {
        "billing": BillingExportsResource.of([AwsCurExport(root=str(workdir / "export"), layout="cur2")]),
        "lake": LakeResource(
            root=str(workdir / "lake"),
            decision_log_dir=str(workdir / "log"),
            pseudonymisation_key_file=str(workdir / "key"),
        ),
    }
    defs = dg.Definitions(
        assets=[cost_ledger], jobs=[dg.define_asset_job("backfill", selection=[cost_ledger])], resources=resources
    )
    job = defs.resolve_job_def("backfill")
    start = time.perf_counter()
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            tags={
                "dagster/asset_partition_range_start": days[0].isoformat(),
                "dagster/asset_partition_range_end": days[-1].isoformat(),
            },
        )
        seconds = time.perf_counter() - start
        materialised = sorted(e.materialization.partition for e in result.get_asset_materialization_events())
        checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    print(
        json.dumps(
            {
                "cpu": cpu,
                "success": result.success,
                "runs": 1,
                "seconds": seconds,
                "partitions": len(materialised),
                "checks": checks,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        ),
        flush=True,
    )


def report(args, workdir: Path) -> int:
    rows = args.days * args.rows_per_day
    need = rows * (EXPORT_BYTES_PER_ROW + LEDGER_BYTES_PER_ROW)
    free = shutil.disk_usage(workdir).free
    if need > free * 0.9:
        print(
            f"not run: {args.days} days of {args.rows_per_day:,} line items need about {need / 2**30:.0f} GB "
            f"(export and ledger) and {workdir} has {free / 2**30:.0f} GB free; use a smaller --rows-per-day"
        )
        print(json.dumps({"days": args.days, "rows_per_day": args.rows_per_day, "error": "not enough disk"}))
        return 1
    start = time.perf_counter()
    generated = generate(args, workdir / "export")
    size = sum(f.stat().st_size for f in (workdir / "export").rglob("*.parquet")) / 2**20
    print(
        f"data: {args.days} days from {FIRST_DAY} of {args.rows_per_day:,} CUR 2.0 line items each ({generated:,} in "
        f"all, {size:.0f} MB of Parquet, one file per billing period) in {time.perf_counter() - start:.0f} s "
        "(not timed)",
        flush=True,
    )
    env = {**__import__("os").environ, **SINGLE_THREAD_ENV}
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", *_forwarded(args), "--workdir", str(workdir)],
        capture_output=True,
        text=True,
        env=env,
    )
    if done.returncode != 0:
        print(f"the backfill child failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        return 1
    child = json.loads(done.stdout.strip().splitlines()[-1])
    rows_per_s = generated / child["seconds"]
    print(
        f"backfill of {args.days} daily partitions as {child['runs']} run on CPU {child['cpu']}: "
        f"{'succeeded' if child['success'] else 'FAILED'} in {child['seconds']:.1f} s wall time "
        f"({rows_per_s:,.0f} line items/s, {child['partitions']} partitions materialised, checks {child['checks']}), "
        f"peak RSS {child['peak_rss_mb']:.0f} MB"
    )
    print(
        json.dumps(
            {
                "days": args.days,
                "rows_per_day": args.rows_per_day,
                "rows": generated,
                "runs": child["runs"],
                "wall_s": round(child["seconds"], 1),
                "rows_per_s": round(rows_per_s),
                "partitions": child["partitions"],
                "success": child["success"],
                "peak_rss_mb": round(child["peak_rss_mb"], 1),
            }
        )
    )
    return 0 if child["success"] else 1


def _forwarded(args) -> list[str]:
    return [
        *("--days", str(args.days), "--rows-per-day", str(args.rows_per_day)),
        *("--resources", str(args.resources), "--seed", str(args.seed)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--rows-per-day", type=int, default=10_000_000)
    parser.add_argument("--resources", type=int, default=40_000, help="distinct resource ids")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", help="where the export and the lake go (default: a temporary folder, removed)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.days < 1 or args.rows_per_day < 1:
        parser.error("--days and --rows-per-day must be positive")
    if args.child:
        measure(args, Path(args.workdir))
        return
    run_in_workdir(args.workdir, "backfill-benchmark-", lambda workdir: report(args, workdir))


if __name__ == "__main__":
    main()
