"""The billing resource: every cost source that feeds the cost ledger, each declared as a kind of
`costs.sources.SOURCE_KINDS` and its fields (validated against that kind's config)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

import dagster as dg
import pydantic

from rai_pipelines.costs.ledger_build import export_fingerprint, read_days
from rai_pipelines.costs.ledger_schema import SourceConfig, SourceFile
from rai_pipelines.costs.sources import kind_of, open_reader, source_config


class BillingSource(dg.Config):
    """One billing source: its kind (aws_cur, aws_focus, azure_focus, gcp_bigquery, gcp_storage,
    onprem) and that kind's fields."""

    kind: str
    fields: dict[str, Any]

    @pydantic.model_validator(mode="after")
    def _fields_fit_the_kind(self) -> BillingSource:
        source_config(self.kind, self.fields, f"billing source {self.kind}")
        return self


class BillingExportsResource(dg.ConfigurableResource):
    """Every cost source that feeds the cost ledger."""

    sources: list[BillingSource] = []

    @classmethod
    def of(cls, configs: Iterable[SourceConfig]) -> BillingExportsResource:
        # Dagster's config holds no nulls: a field left empty takes its kind's default.
        return cls(sources=[BillingSource(kind=kind_of(c), fields=c.model_dump(exclude_none=True)) for c in configs])

    def readers(self) -> list:
        return [open_reader(s.kind, source_config(s.kind, s.fields, f"billing source {s.kind}")) for s in self.sources]

    def export_fingerprint(self, day: date) -> str:
        """A digest of every source's export files for the day's billing period."""
        return export_fingerprint(self.readers(), day)

    def read_day(self, day: date) -> list[SourceFile]:
        return read_days(self.readers(), [day])[day]
