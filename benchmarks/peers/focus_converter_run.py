"""The FinOps Foundation's focus-converter on a CUR Parquet file; run with the peer venv's python (see
benchmarks/peers.py and benchmarks/ledger.py).

    python focus_converter_run.py --input cur.parquet --workdir DIR [--provider aws] [--cores one|all]

focus-converter 1.0.0 (the newest release; polars 0.20.10, pyarrow 14) has five rule sets: "aws" for the
snake_case column names of the CUR that AWS delivers as Parquet (line_item_unblended_cost, ...), "aws-cur"
for the legacy CSV names (lineItem/UnblendedCost, ...), and "azure", "gcp", "oci". It has no CUR 2.0 rule
set, but CUR 2.0 keeps those snake_case names, so "aws" reads a CUR 2.0 file as it is except for a few
columns: it looks for reservation_reservation_arn and savings_plan_savings_plan_arn, which CUR 2.0 (and the
legacy Parquet CUR) spell reservation_reservation_a_r_n and savings_plan_savings_plan_a_r_n, and for
product_purchase_option and product_region, which CUR 2.0 moved into its `product` map. Missing columns
become nulls (its "apply_default_if_column_missing" and dtype rules), so nothing fails, but without the
ARNs its CommitmentDiscountId/Type/Category stay empty. So, before its clock starts, this script copies the
file row group by row group adding reservation_reservation_arn and savings_plan_savings_plan_arn as copies
of the a_r_n columns (listed in "renamed"); the two product_ columns are left missing (PricingCategory is
then "Other" and RegionId falls back to product_region_code, as the rules say). The map columns
(resource_tags, product, cost_category, discount) are read but not used: its rule set has no Tags column
and no attribution.

Timed: FocusConverter built, its YAML rules loaded, the conversion plan prepared, and convert(), which scans
the file with a pyarrow dataset scanner in 50,000-row batches, applies the polars plan to each batch and
writes the FOCUS columns (without the source columns) as snappy Parquet through its writer processes.
With --cores one (the default) the process is pinned to one CPU (the writer processes inherit it) with
POLARS_MAX_THREADS=1; with --cores all it runs on every usable core with Polars' own thread pool, as the
measured step of benchmarks/ledger.py does in each of its two runs. Its last stdout line is one JSON
object: {"seconds", "rows", "version", "provider", "polars", "pyarrow", "cpu", "cores", "renamed",
"peak_rss_mb", "writers_peak_rss_mb", "output_mb"}.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from importlib.metadata import version as package_version
from pathlib import Path

ALIASES = {  # column the "aws" rules read -> the CUR 2.0 column holding it
    "reservation_reservation_arn": "reservation_reservation_a_r_n",
    "savings_plan_savings_plan_arn": "savings_plan_savings_plan_a_r_n",
}


def prepare(source: Path, target: Path) -> list[str]:
    """Copy `source` to `target` adding the ALIASES columns; returns "new <- old" for each one added."""
    import pyarrow.parquet as pq

    reader = pq.ParquetFile(source)
    names = reader.schema_arrow.names
    added = [(new, old) for new, old in ALIASES.items() if new not in names and old in names]
    writer = None
    try:
        for group in range(reader.num_row_groups):
            table = reader.read_row_group(group)
            for new, old in added:
                table = table.append_column(new, table.column(old))
            if writer is None:
                writer = pq.ParquetWriter(target, table.schema, compression="snappy")
            writer.write_table(table, row_group_size=table.num_rows)
    finally:
        if writer is not None:
            writer.close()
    return [f"{new} <- {old}" for new, old in added]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--input", required=True, help="a CUR Parquet file")
    parser.add_argument("--workdir", required=True, help="scratch folder for the renamed copy and the output")
    parser.add_argument("--provider", default="aws", help="focus-converter rule set")
    parser.add_argument("--cores", choices=("one", "all"), default="one", help="one CPU, or every usable core")
    parser.add_argument("--prepare-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare_only:
        print(json.dumps(prepare(Path(args.input), Path(args.workdir) / "cur.parquet")))
        return
    os.environ["TQDM_DISABLE"] = "1"  # its progress bar
    cpu = None
    if args.cores == "one":
        os.environ["POLARS_MAX_THREADS"] = "1"  # before polars is imported
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
    else:
        os.environ.pop("POLARS_MAX_THREADS", None)
    workdir = Path(args.workdir)
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    data = workdir / "input"
    data.mkdir()
    # The copy is made in a process of its own, so that its memory is not in this one's peak RSS.
    done = subprocess.run(
        [sys.executable, __file__, "--prepare-only", "--input", args.input, "--workdir", str(data)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"preparing the input failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    renamed = json.loads(done.stdout.splitlines()[-1])
    output = workdir / "output"

    import polars as pl
    import pyarrow as pa
    import pyarrow.dataset as ds
    from focus_converter.converter import FocusConverter
    from focus_converter.data_loaders.data_exporter import ExportDataFormats
    from focus_converter.data_loaders.data_loader import DataFormats, ParquetDataFormat

    start = time.perf_counter()
    converter = FocusConverter()
    converter.load_provider_conversion_configs()
    converter.load_data(
        data_path=str(data), data_format=DataFormats.PARQUET, parquet_data_format=ParquetDataFormat.DATASET
    )
    converter.configure_data_export(
        export_path=str(output), export_include_source_columns=False, export_format=ExportDataFormats.PARQUET
    )
    converter.prepare_horizontal_conversion_plan(provider=args.provider)
    converter.convert()
    seconds = time.perf_counter() - start

    rows = ds.dataset(output).count_rows()
    print(
        json.dumps(
            {
                "seconds": seconds,
                "rows": rows,
                "version": package_version("focus_converter"),
                "provider": args.provider,
                "polars": pl.__version__,
                "pyarrow": pa.__version__,
                "cpu": cpu,
                "cores": len(os.sched_getaffinity(0)),
                "renamed": renamed,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "writers_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                "output_mb": sum(f.stat().st_size for f in output.iterdir()) / 2**20,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
