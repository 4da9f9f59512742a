"""Running Great Expectations suites: a data frame checked against a list of expectations in an
ephemeral context, each failure described as a finding that names its column. Used by the
snapshot checks (monitoring) and the ledger's FOCUS conformance (costs)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pandas as pd


@dataclass(frozen=True)
class Finding:
    expectation: str
    column: str | None
    detail: str


@dataclass(frozen=True)
class SuiteResult:
    suite: str
    evaluated: int
    findings: list[Finding] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.findings


def _describe(result) -> Finding:
    config = result.expectation_config
    column = config.kwargs.get("column")
    details = result.result or {}
    if result.exception_info and result.exception_info.get("raised_exception"):
        detail = result.exception_info.get("exception_message", "expectation could not be evaluated")
    elif config.type == "expect_column_to_exist":
        detail = "column is missing"
    elif config.type == "expect_table_row_count_to_be_between":
        detail = f"{details.get('observed_value', 0)} rows: the day has no traffic"
    elif config.type == "expect_column_values_to_not_be_null":
        count, total = details.get("unexpected_count", 0), details.get("element_count", 0)
        detail = f"{count} of {total} values missing" + (" (the whole column)" if count and count == total else "")
    elif config.type == "expect_column_values_to_be_in_set":
        unexpected = ", ".join(sorted({str(v) for v in details.get("partial_unexpected_list", [])}))
        allowed = (config.meta or {}).get("allowed", "the allowed values")
        detail = f"{details.get('unexpected_count', 0)} value(s) outside {allowed}: {unexpected}"
    elif config.type == "expect_column_values_to_be_between" and (config.meta or {}).get("finite"):
        detail = f"{details.get('unexpected_count', 0)} infinite value(s)"
    elif config.type == "expect_column_values_to_be_between":
        detail = (
            f"{details.get('unexpected_percent', 0):.2f}% of values outside "
            f"[{config.kwargs.get('min_value')}, {config.kwargs.get('max_value')}]"
        )
    elif config.type == "expect_column_values_to_match_regex":
        unexpected = ", ".join(sorted({str(v) for v in details.get("partial_unexpected_list", [])}))
        detail = (
            f"{details.get('unexpected_count', 0)} value(s) not matching {config.kwargs.get('regex')}: {unexpected}"
        )
    elif config.type == "expect_column_pair_values_a_to_be_greater_than_b":
        detail = f"{details.get('unexpected_count', 0)} row(s) where {config.kwargs.get('column_A')} is before " + str(
            config.kwargs.get("column_B")
        )
        column = config.kwargs.get("column_A")
    elif config.type == "expect_column_unique_value_count_to_be_between":
        detail = f"{details.get('observed_value')} group(s): fairness cannot compare groups"
    else:
        detail = str(details)
    return Finding(config.type, column, detail)


def run_suite(frame: pd.DataFrame, name: str, expectations: list) -> SuiteResult:
    """Validate a data frame against Great Expectations expectations in an ephemeral context."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas("rai_pipelines")
        .add_dataframe_asset(name)
        .add_batch_definition_whole_dataframe("partition")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    checked = context.suites.add(gx.ExpectationSuite(name=name, expectations=expectations))
    results = batch.validate(checked).results
    findings = [_describe(r) for r in results if not r.success]
    # A missing column is one finding, not one per expectation on it.
    missing = {f.column for f in findings if f.expectation == "expect_column_to_exist"}
    absent = {c for c in (r.expectation_config.kwargs.get("column") for r in results) if c and c not in frame}
    findings = [f for f in findings if f.expectation == "expect_column_to_exist" or f.column not in missing | absent]
    findings += [Finding("expect_column_to_exist", c, "column is missing") for c in sorted(absent - missing)]
    return SuiteResult(name, len(results), findings)
