"""The FinOps Foundation's FOCUS validator on a cost ledger; run with the peer venv's python (see benchmarks/peers.py).

    python focus_validate.py --ledger ledger.parquet [--version 1.2]

focus-validator 2.2.1 checks a dataset against the FOCUS specification's own rule model (for 1.2,
`model-1.2.0.1.json`, bundled with the package; `rules_block_remote_download` keeps it from fetching
anything). The ledger is given to it as it is written, every column and type included: its Parquet
loader reads decimals, UTC timestamps and the x_ columns. Rules run with the validator's default
applicability criteria (what a provider states it supports is not assumed); a rule the model marks
dynamic, or whose criteria do not apply, is skipped by the validator and counted in "skipped".

The validator reads its ISO currency code list from the relative path
"focus_validator/rules/currency_codes.csv", so it runs with the package's parent folder as the working
directory (otherwise the currency check fails with FileNotFoundError on any ledger).

The last stdout line is one JSON object: {"validator_version", "focus_version", "model_version",
"rows", "checks", "passed", "skipped", "failures": [{"rule", "message", "violations", "examples"}]}.
"failures" holds the rules that failed on the data themselves; "composite_failures" the rules that
failed only because rules they are made of (an AND or an OR of child rules) or depend on failed,
which the failures above already name.
"""

from __future__ import annotations

import argparse
import ast
import json
import logging
import os
import sys
import tempfile
from contextlib import contextmanager
from importlib.metadata import version as package_version
from pathlib import Path

EXAMPLES = 5


@contextmanager
def working_directory(path: Path):
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def _details(raw) -> dict:
    """The validator keeps each rule's details as a dict, or as its text (with a data frame of
    failure cases rendered into it); the fields this script reports are read from either."""
    if isinstance(raw, dict):
        return raw
    text = str(raw)
    cases = ""
    if "'failure_cases':" in text:
        text, cases = text.split("'failure_cases':", 1)
        text = text.rstrip(", ") + "}"
    try:
        details = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        details = {"message": str(raw)}
    if cases:
        details["failure_cases_text"] = cases.strip().rstrip("}")
    return details


def _examples(details: dict) -> list[str]:
    cases = details.get("failure_cases")
    if cases is not None and hasattr(cases, "head"):
        return [str(row) for row in cases.head(EXAMPLES).to_dict("records")]
    lines = [line.strip() for line in str(details.get("failure_cases_text", "")).splitlines()[1:]]
    return [line for line in lines if line][:EXAMPLES]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ledger", required=True, help="Parquet file of the cost ledger")
    parser.add_argument("--version", default="1.2", help="FOCUS version to validate against")
    args = parser.parse_args()

    ledger = str(Path(args.ledger).resolve())
    logging.disable(logging.CRITICAL)  # the validator logs every rule; the JSON line is the result
    # ... and its logging configuration opens focus_validator_detailed.log in the working directory
    # when it is imported: that file goes to a folder of its own, not the caller's checkout.
    os.chdir(tempfile.mkdtemp(prefix="focus-validator-"))
    from focus_validator.validator import DEFAULT_VERSION_SETS_PATH, Validator

    package_parent = Path(sys.modules["focus_validator"].__file__).resolve().parent.parent
    with working_directory(package_parent):
        validator = Validator(
            data_filename=ledger,
            output_destination=None,
            output_type="console",
            rules_version=args.version,
            rule_set_path=DEFAULT_VERSION_SETS_PATH,
            focus_dataset="CostAndUsage",
            rules_block_remote_download=True,
            show_violations=True,
        )
        results = validator.validate()

    failures, composite, skipped, passed = [], [], 0, 0
    for rule, outcome in sorted(results.by_rule_id.items()):
        details = _details(outcome.get("details", {}))
        if details.get("skipped"):
            skipped += 1
            continue
        if outcome.get("ok") in (True, "True"):
            passed += 1
            continue
        message = str(details.get("message", ""))
        entry = {
            "rule": rule,
            "message": message,
            "violations": details.get("violations"),
            "examples": _examples(details),
        }
        if "child rules" in message or "Upstream dependency failed" in message:
            composite.append(entry)
        else:
            failures.append(entry)

    print(
        json.dumps(
            {
                "validator_version": package_version("focus-validator"),
                "focus_version": results.rules_version,
                "model_version": results.model_version,
                "rows": results.data_row_count,
                "checks": len(results.by_rule_id),
                "passed": passed,
                "skipped": skipped,
                "failures": failures,
                "composite_failures": composite,
            },
            default=str,
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
