"""The FinOps Foundation's FOCUS validator on a cost ledger; run with the peer venv's python (see benchmarks/peers.py).

    python focus_validate.py --ledger ledger.parquet [--version 1.0] [--validator-column-names]

focus-validator 1.0.0 is the newest release that installs on Python 3.11 (2.x needs 3.12); its rule sets
are "0.5", "1.0-preview" and "1.0", so FOCUS 1.0 is the newest version it can check, and the only one
this script maps the ledger to.

The ledger (FOCUS 1.2 columns plus x_ columns) is cut down to the columns that FOCUS 1.0 defines: the
1.2-only InvoiceId and every x_ column are dropped (listed in "dropped_columns"). Two conversions, both
because of how the validator checks types, and listed in "converted_columns":

- Decimal columns (decimal128 in our Parquet) become float64. The validator's "decimal" data type is a
  pandera `Float` dtype check, so a column of Python Decimal objects (what pandas makes of decimal128)
  fails it on every row. float64 keeps about 15 significant digits, which is all the checks look at.
- Timestamps (timestamp[us, UTC]) become ISO 8601 strings in UTC, "2023-11-01T00:00:00Z" (FOCUS 1.0's
  Date/Time Format). The validator's datetime check accepts any numpy datetime64 value as it is, because
  pandas hands it tz-less datetime64 values, so it would never look at the time zone; on strings it
  parses each one and requires UTC, which is the check the spec means.

The result is written as Parquet (not CSV: pandas reads an all-null CSV column as float64, and the
validator's string-type check would then fail columns such as ResourceId that are legitimately all null)
into a temporary directory and validated through the validator's Python API: `Validator(...).load()`
then `SpecRules.validate(DataFrame)`, whose checklist gives one status per check. The validator reads
its ISO currency code list from the relative path "focus_validator/utils/currency_codes.csv", so the
validation runs with the package's parent folder as the working directory (otherwise the currency check
fails with FileNotFoundError on any ledger).

The validator's 1.0 rule set names four columns otherwise than the FOCUS 1.0 spec: Provider, Publisher,
InvoiceIssuer and ResourceID for ProviderName, PublisherName, InvoiceIssuerName and ResourceId. By
default the ledger keeps the spec's names, so the validator reports those columns as missing;
--validator-column-names renames them to the validator's names so that its value checks on them run.

The last stdout line is one JSON object: {"validator_version", "focus_version", "passed", "checks",
"failures": [{"check", "column", "detail", "status"}, ...], ...}. Every check the validator failed or
could not run (status "errored") is in "failures". Checks it marks as passed although their column is
absent (the validator skips them) are listed apart, in "not_run".
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from contextlib import contextmanager
from datetime import timezone
from importlib.metadata import version as package_version
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from focus_validator.config_objects import ChecklistObjectStatus
from focus_validator.validator import DEFAULT_VERSION_SETS_PATH, Validator

# Every column of FOCUS 1.0 with its feature level (FOCUS_Spec v1.0, specification/columns/*.md).
FOCUS_1_0_COLUMNS = {
    "AvailabilityZone": "Recommended",
    "BilledCost": "Mandatory",
    "BillingAccountId": "Mandatory",
    "BillingAccountName": "Mandatory",
    "BillingCurrency": "Mandatory",
    "BillingPeriodEnd": "Mandatory",
    "BillingPeriodStart": "Mandatory",
    "ChargeCategory": "Mandatory",
    "ChargeClass": "Mandatory",
    "ChargeDescription": "Mandatory",
    "ChargeFrequency": "Recommended",
    "ChargePeriodEnd": "Mandatory",
    "ChargePeriodStart": "Mandatory",
    "CommitmentDiscountCategory": "Conditional",
    "CommitmentDiscountId": "Conditional",
    "CommitmentDiscountName": "Conditional",
    "CommitmentDiscountStatus": "Conditional",
    "CommitmentDiscountType": "Conditional",
    "ConsumedQuantity": "Conditional",
    "ConsumedUnit": "Conditional",
    "ContractedCost": "Mandatory",
    "ContractedUnitPrice": "Conditional",
    "EffectiveCost": "Mandatory",
    "InvoiceIssuerName": "Mandatory",
    "ListCost": "Mandatory",
    "ListUnitPrice": "Conditional",
    "PricingCategory": "Conditional",
    "PricingQuantity": "Mandatory",
    "PricingUnit": "Mandatory",
    "ProviderName": "Mandatory",
    "PublisherName": "Mandatory",
    "RegionId": "Conditional",
    "RegionName": "Conditional",
    "ResourceId": "Conditional",
    "ResourceName": "Conditional",
    "ResourceType": "Conditional",
    "ServiceCategory": "Mandatory",
    "ServiceName": "Mandatory",
    "SkuId": "Conditional",
    "SkuPriceId": "Conditional",
    "SubAccountId": "Conditional",
    "SubAccountName": "Conditional",
    "Tags": "Conditional",
}

# FOCUS 1.0 column ID -> the name focus-validator 1.0.0's "1.0" rule set checks instead.
VALIDATOR_COLUMN_NAMES = {
    "ProviderName": "Provider",
    "PublisherName": "Publisher",
    "InvoiceIssuerName": "InvoiceIssuer",
    "ResourceId": "ResourceID",
}

EXAMPLE_ROWS = 5


def focus_1_0_table(ledger: pa.Table, validator_names: bool) -> tuple[pa.Table, list[str], dict[str, str]]:
    """The ledger cut to FOCUS 1.0 columns with the validator's types: (table, dropped, converted)."""
    kept = [name for name in ledger.column_names if name in FOCUS_1_0_COLUMNS]
    dropped = [name for name in ledger.column_names if name not in FOCUS_1_0_COLUMNS]
    columns, names, converted = [], [], {}
    for name in kept:
        column = ledger.column(name)
        kind = column.type
        if pa.types.is_decimal(kind):
            column = column.cast(pa.float64())
            converted[name] = f"{kind} -> float64"
        elif pa.types.is_timestamp(kind):
            column = iso_utc_strings(column)
            converted[name] = f"{kind} -> ISO 8601 UTC string"
        columns.append(column)
        names.append(VALIDATOR_COLUMN_NAMES.get(name, name) if validator_names else name)
    return pa.table(columns, names=names), dropped, converted


def iso_utc_strings(column: pa.ChunkedArray) -> pa.Array:
    """Timestamps as ISO 8601 text, "2023-11-01T00:00:00Z" (a fraction only where there is one), nulls kept.
    A tz-aware value is written in UTC with a Z; a tz-less one without any offset, so the validator's
    UTC check fails it rather than this script vouching for its zone."""
    out = []
    for value in column.to_pylist():
        if value is None or value.tzinfo is None:
            out.append(None if value is None else value.isoformat())
        else:
            out.append(value.astimezone(timezone.utc).replace(tzinfo=None).isoformat() + "Z")
    return pa.array(out, type=pa.string())


@contextmanager
def working_directory(path: Path):
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def failure_details(failure_cases: pd.DataFrame | None) -> dict[str, dict]:
    """Check name -> {"description", "rows", "examples"} from the validator's failure-case table."""
    if failure_cases is None or failure_cases.empty:
        return {}
    details: dict[str, dict] = {}
    for check, group in failure_cases.sort_values("Row #", kind="stable").groupby("Check Name", sort=True):
        rows = sorted({int(r) for r in group["Row #"].dropna().tolist()})
        values = []
        for value in group["Values"].tolist():
            if value is None or (isinstance(value, float) and pd.isna(value)):
                continue
            if str(value) not in values:
                values.append(str(value))
        descriptions = [str(d).strip() for d in group["Description"].dropna().unique().tolist()]
        details[str(check)] = {
            "description": descriptions[0] if descriptions else "",
            "rows": rows,
            "examples": values[:EXAMPLE_ROWS],
        }
    return details


def describe(item, detail: dict | None, columns: set[str]) -> str:
    """One line saying why a check failed or errored."""
    if item.error:
        return item.error
    text = (detail or {}).get("description") or item.friendly_name or ""
    if item.column_id not in columns and getattr(item.rule_ref, "check", None) == "column_required":
        return f"{text} The column is not in the dataset."
    if detail is None:
        return text
    rows, examples = detail["rows"], detail["examples"]
    if rows:
        shown = ", ".join(str(r) for r in rows[:EXAMPLE_ROWS]) + (", ..." if len(rows) > EXAMPLE_ROWS else "")
        text += f" {len(rows)} row(s) fail (1-based: {shown})."
    else:
        text += " Fails on the whole column."
    if examples:
        text += f" Example values: {examples}."
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ledger", required=True, help="Parquet file of the cost ledger")
    parser.add_argument("--version", default="1.0", help="FOCUS version to validate against (only 1.0 is mapped)")
    parser.add_argument(
        "--validator-column-names",
        action="store_true",
        help="rename ProviderName, PublisherName, InvoiceIssuerName, ResourceId to the validator's 1.0 names",
    )
    args = parser.parse_args()

    rule_versions = sorted(p.name for p in Path(DEFAULT_VERSION_SETS_PATH).iterdir() if p.is_dir())
    if args.version != "1.0":
        parser.error(f"only FOCUS 1.0 is mapped here; the validator's rule sets are {rule_versions}")

    ledger = pq.read_table(args.ledger)
    table, dropped, converted = focus_1_0_table(ledger, args.validator_column_names)
    absent_spec_columns = [name for name in FOCUS_1_0_COLUMNS if name not in ledger.column_names]

    with tempfile.TemporaryDirectory(prefix="focus-validate-") as tmp:
        data_file = Path(tmp) / "focus_1_0.parquet"
        pq.write_table(table, data_file)
        validator = Validator(
            data_filename=str(data_file),
            output_destination=None,
            output_type="console",
            rules_version=args.version,
        )
        package_parent = Path(sys.modules["focus_validator"].__file__).resolve().parent.parent
        with working_directory(package_parent):
            validator.load()
            result = validator.spec_rules.validate(validator.focus_data)
        present = set(validator.focus_data.columns)

    details = failure_details(result.failure_cases)
    failures, not_run = [], []
    for name, item in sorted(result.checklist.items()):
        status = item.status
        if status in (ChecklistObjectStatus.FAILED, ChecklistObjectStatus.ERRORED):
            failures.append(
                {
                    "check": name,
                    "column": item.column_id,
                    "detail": describe(item, details.get(name), present),
                    "status": status.value,
                }
            )
        elif status == ChecklistObjectStatus.PASSED and item.column_id not in present:
            not_run.append(name)

    figures = {
        "validator_version": package_version("focus-validator"),
        "focus_version": args.version,
        "passed": not failures,
        "checks": len(result.checklist),
        "failures": failures,
        "not_run": not_run,
        "rows": table.num_rows,
        "columns_validated": table.column_names,
        "dropped_columns": dropped,
        "converted_columns": converted,
        "absent_focus_columns": {name: FOCUS_1_0_COLUMNS[name] for name in absent_spec_columns},
        "validator_column_names": args.validator_column_names,
        "validator_rule_sets": rule_versions,
    }
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
