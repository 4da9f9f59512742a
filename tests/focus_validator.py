"""The FinOps Foundation's focus-validator (2.2.1, FOCUS 1.2) as the oracle of the ledger's FOCUS:
run in its own virtual environment (Python 3.12) on a ledger written to Parquet as it is."""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from rai_pipelines.settings import PROJECT_ROOT

# The validator's rules that a correct ledger fails, each with why the validator is wrong there (the
# README's list): every other rule it reports is a defect of the ledger.
VALIDATOR_DEFECTS = {
    "InvoiceId-C-004-C": (
        "FOCUS: InvoiceId MUST be null when the charge is not associated with an invoice and MUST NOT be null "
        "when it is; the validator's two rules carry no condition, so a ledger holding invoiced charges and "
        "the open month's (no invoice yet) fails one of them, and a ledger of either kind fails the other"
    ),
    "InvoiceId-C-005-C": "the other half of InvoiceId-C-004-C",
    "BilledCost-C-005-C": (
        "FOCUS asks for a BilledCost of 0 where 'payments are received by a third party'; the validator "
        "decides that by ProviderName differing from InvoiceIssuerName, so an AWS charge invoiced by "
        "'Amazon Web Services, Inc.' under the provider name 'AWS', as AWS's own FOCUS export writes it, "
        "reads as a marketplace charge"
    ),
}
# Rules a FOCUS export fails on values the ledger keeps as the provider wrote them (a FOCUS export is
# the provider's own FOCUS; rewriting it would break the reconciliation with the provider's totals).
PROVIDER_VALUES = {
    "EffectiveCost-C-005-C": (
        "AWS's FOCUS export (and the CUR mapping, which follows it) keeps the unused part of a savings plan's "
        "or a reservation's recurring fee as the EffectiveCost of the fee's Purchase row, where FOCUS 1.2 "
        "wants 0 there and the unused part on a Usage row with CommitmentDiscountStatus Unused"
    ),
    "PricingUnit-C-003-O": (
        "Azure writes its units of measure ('1 GB/Month', '1K') as PricingUnit; FOCUS's UnitFormat is a "
        "SHOULD. The CUR mapping rewrites AWS's ('Hrs', 'GB-Mo') in UnitFormat"
    ),
}


def focus_validator_failures(ledger: pa.Table, work: Path) -> tuple[dict, set[str]]:
    """The validator's result on `ledger`, and the rules it failed on the data."""
    sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))
    from peers import FOCUS_VALIDATOR_PYTHON, FOCUS_VALIDATOR_REQUIREMENTS, PEERS_DIR, peer_python, run_peer

    python = peer_python("focus-validator-2", FOCUS_VALIDATOR_REQUIREMENTS, FOCUS_VALIDATOR_PYTHON)
    path = work / "ledger.parquet"
    pq.write_table(ledger.drop_columns([c for c in ledger.column_names if c == "date"]), path)
    result = run_peer(python, PEERS_DIR / "focus_validate.py", "--ledger", str(path), timeout=600)
    assert result["focus_version"] == "1.2" and result["rows"] == ledger.num_rows
    assert result["checks"] > 500 and result["passed"] > 100, result
    return result, {f["rule"] for f in result["failures"]}
