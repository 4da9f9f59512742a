"""What a person reviewing a rollback reads: the pull request's title and body (the decision, the
facts it was made with and their dates, the diff, what was checked before the commit, and the
commands that reproduce it), and the alerts' text."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from rai_pipelines.core.markdown import table
from rai_pipelines.governance.alerts import Alert
from rai_pipelines.governance.rollback import RollbackResult
from rai_pipelines.governance.verification import Verification

FACT_COLUMNS = (
    ("fairness_score", "fairness"),
    ("drift_share", "drift share"),
    ("cost_per_inference_usd", "cost/inference (USD)"),
    ("estimated_cost_per_inference_usd", "est. cost/inference (USD)"),
    ("inference_count", "inferences"),
)
MAX_DIFF_CHARS = 40_000


@dataclass(frozen=True)
class RollbackRequest:
    """The remediation asked for, as the policy sensor decided it."""

    app: str
    overlay: str
    deployment: str
    bad_version: str
    decision_id: str
    policy_revision: str


def pull_request_title(request: RollbackRequest, result: RollbackResult) -> str:
    return f"rollback({request.app}): pin {result.target_version}, {request.bad_version} violates policy"


def _latest_facts(facts_rows: list[dict], app: str, version: str | None) -> dict | None:
    rows = [r for r in facts_rows if r["model_name"] == app and r["model_version"] == version]
    return max(rows, key=lambda r: r["date"]) if rows else None


def _fence(text: str, language: str = "") -> str:
    """A code block no line of `text` can close: its fence is longer than any run of backticks in it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text.rstrip()}\n{fence}"


def _inline(text: str) -> str:
    """Text from facts, policies or the registry, shown literally (no Markdown, no mention)."""
    return "`" + str(text).replace("`", "'").replace("\n", " ") + "`"


def pull_request_body(request: RollbackRequest, result: RollbackResult, facts_rows: list[dict]) -> str:
    facts = [
        (version, row)
        for version in (request.bad_version, result.target_version)
        if (row := _latest_facts(facts_rows, request.app, version))
    ]
    diff = result.diff if len(result.diff) <= MAX_DIFF_CHARS else result.diff[:MAX_DIFF_CHARS] + "\n... (diff cut)"
    reproduce = [
        shlex.join(
            [
                "rai-pipelines",
                "rollback",
                "--dry-run",
                "--app",
                request.app,
                "--bad-version",
                request.bad_version,
                "--overlay",
                request.overlay,
                "--deployment",
                request.deployment,
            ]
        ),
        shlex.join(["rai-pipelines", "facts", "export", "--model", request.app, "--out", "facts.json"]),
        shlex.join(["rai-pipelines", "gate", request.overlay, "--facts", "facts.json"]),
    ]
    lines = [
        f"The policies deny {_inline(request.app)} {_inline(request.bad_version)} in {_inline(request.overlay)}; "
        f"this change returns it to {_inline(result.target_version)}, the most recent version the same policies "
        "allow with its own facts. Argo CD or Flux deploys it once this is merged.",
        "",
    ]
    if result.fallback_reason:
        lines += [f"> {result.fallback_reason}", ""]
    lines += [
        "### Decision",
        "",
        f"- decision id: {_inline(request.decision_id)}",
        f"- policy bundle: {_inline(request.policy_revision)}",
        *[f"- denied: {_inline(message)}" for message in result.violations],
        "",
        "### Facts (the latest of each version)",
        "",
        table(
            ["version", "date", *(label for _, label in FACT_COLUMNS)],
            [(version, row["date"], *(row.get(name) for name, _ in FACT_COLUMNS)) for version, row in facts],
        )
        if facts
        else "(no facts)",
        "",
        "### Checked before the commit",
        "",
        *[f"- {check}" for check in result.checks],
        "",
        "### Change",
        "",
        _fence(diff, "diff"),
        "",
        "### Reproduce",
        "",
        _fence("\n".join(reproduce), "sh"),
        "",
        f"Commit {_inline(result.commit_sha)} on branch {_inline(result.branch)}, opened by rai-pipelines.",
    ]
    return "\n".join(lines)


def _one_line(text: str, limit: int = 300) -> str:
    return " ".join(str(text).split())[:limit]


def violation_alert(record: dict, violation: str, links: tuple[tuple[str, str], ...] = ()) -> Alert:
    """A decision that denies a deployed model: what the policies said and what happens next.
    `violation` identifies it across evaluations (the rollback run key): alerted once."""
    result = record["result"]
    remediation = result.get("remediation", "alert")
    then = {
        "rollback": "a rollback to the last compliant version is launched",
        "review": "a rollback is proposed for review",
    }.get(remediation, "nothing is changed in Git: a person must act")
    overlay = record.get("gitops", {}).get("overlay", "")
    return Alert(
        kind="violation",
        decision_id=record["decision_id"],
        app=record.get("app") or overlay or "(unknown)",
        model_version=record.get("model_version") or "",
        summary=_one_line(f"policy violation in {overlay}: {then}"),
        details=tuple(result.get("deny", [])),
        links=links,
        severity="critical" if remediation == "rollback" else "warning",
        subject=violation,
    )


def remediation_alert(
    request: RollbackRequest, result: RollbackResult, links: tuple[tuple[str, str], ...] = ()
) -> Alert:
    where = "pushed to" if result.status == "committed" else "proposed for review on"
    return Alert(
        kind="remediation",
        decision_id=request.decision_id,
        app=request.app,
        model_version=request.bad_version,
        summary=_one_line(
            f"rolled back to {result.target_version}: commit {(result.commit_sha or '')[:12]} {where} {result.branch}"
        ),
        details=tuple([*result.violations, *([result.fallback_reason] if result.fallback_reason else [])]),
        diff=result.diff,
        links=links,
        severity="warning" if result.status == "committed" else "critical",
    )


def refusal_alert(request: RollbackRequest, reason: str, links: tuple[tuple[str, str], ...] = ()) -> Alert:
    return Alert(
        kind="refusal",
        decision_id=request.decision_id,
        app=request.app,
        model_version=request.bad_version,
        summary=_one_line(f"no rollback: no compliant version to return to, {request.bad_version} stays deployed"),
        details=(reason,),
        links=links,
    )


def run_failure_alert(
    decision_id: str, app: str, bad_version: str, error: str, links: tuple[tuple[str, str], ...] = ()
) -> Alert:
    return Alert(
        kind="run_failure",
        decision_id=decision_id,
        app=app,
        model_version=bad_version,
        summary=_one_line(f"the rollback run for {app} {bad_version} failed: nothing was pushed by it"),
        details=(error,),
        links=links,
    )


def verification_alert(verification: Verification, links: tuple[tuple[str, str], ...] = ()) -> Alert:
    remediation = verification.remediation
    failed = verification.status == "still_violating"
    return Alert(
        kind="verification_failed" if failed else "verified",
        decision_id=remediation.decision_id,
        app=remediation.app,
        model_version=remediation.restored_version,
        summary=_one_line(verification.reason),
        details=tuple(verification.deny),
        links=links,
        severity="critical" if failed else "info",
    )
