"""The pre-deployment gate's verdict on a proposed change, for the commit message of a FinOps
recommendation's branch: the policies evaluated on the proposed manifests (a serving-resources
change in the GitOps repository) or under the proposed policy data (a budget or threshold), with
the governance facts the pipeline has now."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from rai_pipelines.governance.bundle import PolicyBundle
from rai_pipelines.governance.gate import report_text, run_gate


def gate_report(engine, bundle: PolicyBundle, manifests: list[Path], ai_models: dict) -> str:
    """The gate's report on `manifests` (YAML files or kustomize folders) with `ai_models` as facts:
    the same text `rai-pipelines gate` prints, decisions not logged (a proposal decides nothing)."""
    with tempfile.TemporaryDirectory(prefix="rai-proposal-") as tmp:
        facts = Path(tmp) / "facts.json"
        facts.write_text(json.dumps(ai_models, sort_keys=True, default=str))
        result = run_gate(engine, bundle, [str(m) for m in manifests], str(facts), log=None)
    verdict = "PASS" if result.exit_code == 0 else "FAIL"
    return f"gate {verdict} (exit code {result.exit_code})\n{report_text(result, bundle)}"
