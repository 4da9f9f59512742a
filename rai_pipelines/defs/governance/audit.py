"""The decision log's head as the Dagster event log holds it: each policy evaluation is an
observation of `governance_decisions` with the record's sequence and digest, outside the log file,
so `rai-pipelines audit verify --dagster` detects records deleted from the end of the file."""

from __future__ import annotations

import dagster as dg

from rai_pipelines.defs.keys import GOVERNANCE_DECISIONS


def decision_log_anchor(instance: dg.DagsterInstance | None = None) -> tuple[int, str] | None:
    """(sequence, digest) of the last decision observed, or None."""
    instance = instance or dg.DagsterInstance.get()
    records = instance.fetch_observations(GOVERNANCE_DECISIONS, limit=1).records
    if not records:
        return None
    metadata = records[0].asset_observation.metadata
    if "sequence" not in metadata or "record_digest" not in metadata:
        return None
    return int(metadata["sequence"].value), str(metadata["record_digest"].value)
