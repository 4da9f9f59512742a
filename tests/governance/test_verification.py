"""Verification after a rollback: the restored version is judged by the same policies once facts
newer than the violation's arrive, on OPA with the shipped policies."""

from __future__ import annotations

import pytest

from rai_pipelines.gitops.render import RenderedDeployment
from rai_pipelines.governance.bundle import PolicyBundle
from rai_pipelines.governance.decisions import evaluate_deployments
from rai_pipelines.governance.rego import make_engine
from rai_pipelines.governance.verification import Remediation, verification_record, verify_remediation
from rai_pipelines.settings import PROJECT_ROOT
from tests.governance.test_decisions import _deployment as credit_scoring_deployment

OVERLAY = "apps/credit-scoring-ai/overlays/production"
UNFAIR = "AI model fairness score below acceptable threshold (0.8)."
REMEDIATION = Remediation(
    decision_id="d-rolled-back",
    app="credit-scoring-ai",
    overlay=OVERLAY,
    bad_version="2.0.0",
    restored_version="1.4.2",
    violation_facts_date="2023-11-06",
    commit="0a1b2c3d",
)


@pytest.fixture(scope="module")
def bundle() -> PolicyBundle:
    return PolicyBundle.load(PROJECT_ROOT / "policies")


@pytest.fixture(scope="module")
def engine():
    return make_engine("opa")


def _deployment(version: str) -> RenderedDeployment:
    return RenderedDeployment(OVERLAY, credit_scoring_deployment(version))


def _facts(version: str, day: str, fairness: float) -> dict:
    return {
        "date": day,
        "model_name": "credit-scoring-ai",
        "model_version": version,
        "fairness_score": fairness,
        "estimated_cost_per_inference_usd": 0.0012,
    }


def _verify(engine, bundle, deployed: str | None, rows: list[dict]):
    deployments = [_deployment(deployed)] if deployed else []
    decisions = evaluate_deployments(engine, bundle, deployments, rows, "/srv/gitops.git", "f" * 40)
    return verify_remediation(REMEDIATION, decisions, rows)


BEFORE = [_facts("1.4.2", "2023-11-05", 0.91), _facts("2.0.0", "2023-11-06", 0.62)]


def test_the_restored_version_with_new_compliant_facts_is_verified(engine, bundle):
    verification = _verify(engine, bundle, "1.4.2", [*BEFORE, _facts("1.4.2", "2023-11-07", 0.90)])
    assert (verification.status, verification.facts_date, verification.settled) == ("verified", "2023-11-07", True)
    record = verification_record(verification, "f" * 40)
    assert record["decision_id"] == "d-rolled-back" and record["kind"] == "verification"
    assert record["result"]["status"] == "verified" and record["action"] == {"type": "none"}


def test_the_restored_version_violating_again_with_its_new_facts_is_an_alert(engine, bundle):
    verification = _verify(engine, bundle, "1.4.2", [*BEFORE, _facts("1.4.2", "2023-11-07", 0.55)])
    assert verification.status == "still_violating" and verification.deny == [UNFAIR]
    assert "violates policy again with its facts of 2023-11-07" in verification.reason
    assert verification_record(verification, "f" * 40)["action"] == {"type": "alert"}


def test_without_facts_newer_than_the_violation_it_waits(engine, bundle):
    # the restored version's only facts predate the violation: being compliant then proves nothing now
    verification = _verify(engine, bundle, "1.4.2", BEFORE)
    assert verification.status == "waiting" and not verification.settled
    assert "no facts of 1.4.2 after 2023-11-06" in verification.reason


def test_a_rollback_not_deployed_yet_waits(engine, bundle):
    # a review branch nobody has merged: Git still deploys the bad version
    verification = _verify(engine, bundle, "2.0.0", [*BEFORE, _facts("1.4.2", "2023-11-07", 0.90)])
    assert verification.status == "waiting" and "still deploys 2.0.0" in verification.reason


@pytest.mark.parametrize(("deployed", "reason"), [("3.0.0", "now deploys 3.0.0"), (None, "no longer in the GitOps")])
def test_a_deployment_changed_or_removed_since_the_rollback_is_superseded(engine, bundle, deployed, reason):
    verification = _verify(engine, bundle, deployed, [*BEFORE, _facts("3.0.0", "2023-11-07", 0.95)])
    assert verification.status == "superseded" and reason in verification.reason and verification.settled


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"status": "dry_run"}, None),
        ({"status": "already_remediated"}, None),
        ({"status": "committed", "decision_id": "d", "app": "a", "overlay": "o", "bad_version": "2"}, None),
    ],
)
def test_only_pushed_rollbacks_with_every_field_are_verified(metadata, expected):
    assert Remediation.from_metadata(metadata) is expected


def test_a_pushed_rollback_is_read_from_its_run_metadata():
    metadata = {
        "status": "committed",
        "decision_id": "d-rolled-back",
        "app": "credit-scoring-ai",
        "overlay": OVERLAY,
        "bad_version": "2.0.0",
        "restored_version": "1.4.2",
        "violation_facts_date": "2023-11-06",
        "commit_sha": "0a1b2c3d",
    }
    assert Remediation.from_metadata(metadata) == REMEDIATION


def test_an_overlay_that_does_not_render_or_cannot_be_evaluated_is_not_judged(engine, bundle):
    rows = [*BEFORE, _facts("1.4.2", "2023-11-07", 0.90)]
    decisions = evaluate_deployments(engine, bundle, [_deployment("1.4.2")], rows, "/srv/gitops.git", "f" * 40)
    unrendered = verify_remediation(REMEDIATION, [], rows, {OVERLAY})
    assert unrendered.status == "waiting" and "does not render" in unrendered.reason
    unsafe = evaluate_deployments(engine, bundle, [_deployment("1.4.2;reboot")], rows, "/srv/gitops.git", "f" * 40)
    assert verify_remediation(REMEDIATION, unsafe, rows).status == "waiting"
    assert verify_remediation(REMEDIATION, decisions, rows).status == "verified"
