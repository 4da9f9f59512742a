"""Alerts to a Slack incoming webhook and a generic JSON webhook: violations, remediations,
refusals, failed rollback runs and verifications, each sent once per decision (an outbox under
$RAI_HOME remembers what each webhook has received)."""

from pathlib import Path
from urllib.parse import quote

import dagster as dg

from rai_pipelines.core.errors import RaiError
from rai_pipelines.defs.jobs import gitops_rollback_job
from rai_pipelines.gitops.git import redact
from rai_pipelines.governance.alerts import Alert, AlertOutbox, AlertSink, DeliveryReport, WebhookSink
from rai_pipelines.governance.remediation_report import run_failure_alert


class AlertsResource(dg.ConfigurableResource):
    """Where alerts go. Both URLs are secrets (Slack's carries its token): give them as
    dg.EnvVar("RAI_ALERT_SLACK_WEBHOOK_URL") and dg.EnvVar("RAI_ALERT_WEBHOOK_URL"). Without either,
    alerts stay in the decision log and the Dagster logs only."""

    slack_webhook_url: str | None = None
    webhook_url: str | None = None
    webhook_secret: str | None = None  # signs the JSON webhook's body (X-Rai-Signature: sha256=...)
    outbox_path: str
    dagster_url: str | None = None  # the webserver's address, for links to runs
    timeout_s: float = 5.0

    def sinks(self) -> list[AlertSink]:
        sinks: list[AlertSink] = []
        if self.slack_webhook_url:
            sinks.append(WebhookSink(self.slack_webhook_url, "slack", self.timeout_s))
        if self.webhook_url:
            sinks.append(WebhookSink(self.webhook_url, "json", self.timeout_s, self.webhook_secret or None))
        return sinks

    def run_link(self, run_id: str | None) -> tuple[tuple[str, str], ...]:
        if not (self.dagster_url and run_id):
            return ()
        return (("Dagster run", f"{self.dagster_url.rstrip('/')}/runs/{quote(run_id)}"),)

    def send(self, alert: Alert, log=None, unreachable: set[str] | None = None) -> dict:
        """Deliver `alert` to every webhook that has not had it; never raises (the remediation it
        reports is done whatever the webhooks say). Returns what happened, for the decision log.
        `unreachable`: webhooks that failed earlier in the same tick, not tried again in it."""
        sinks = [s for s in self.sinks() if s.key not in (unreachable or set())]
        if not sinks:
            return {"sent": [], "already": [], "failed": []}
        try:
            report: DeliveryReport = AlertOutbox(Path(self.outbox_path)).deliver(alert, sinks)
        except RaiError as exc:
            if log is not None:
                log.error(f"alert {alert.kind} for decision {alert.decision_id} not sent: {redact(str(exc))}")
            return {"sent": [], "already": [], "failed": [["outbox", redact(str(exc))]]}
        for name, reason in report.failed:
            if log is not None:
                log.error(f"alert {alert.kind} for decision {alert.decision_id} not delivered to {name}: {reason}")
            if unreachable is not None:
                unreachable.update(s.key for s in sinks if s.name == name)
        return {"sent": list(report.sent), "already": list(report.already), "failed": [list(f) for f in report.failed]}


@dg.run_failure_sensor(
    monitored_jobs=[gitops_rollback_job],
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alerts on every failed GitOps rollback run (a push refused, a render that does not pass its "
    "checks, a forge that refused the pull request), once per decision.",
)
def rollback_run_failure_alerts(context: dg.RunFailureSensorContext, alerts: AlertsResource) -> None:
    run = context.dagster_run
    config = (run.run_config.get("ops") or {}).get("gitops_rollback", {}).get("config", {})
    step_errors = [
        event.event_specific_data.error.message.strip()
        for event in context.get_step_failure_events()
        if event.event_specific_data and event.event_specific_data.error
    ]
    error = "; ".join(step_errors) or context.failure_event.message or "the run failed"
    alert = run_failure_alert(
        decision_id=run.tags.get("rai-pipelines/decision-id") or config.get("decision_id") or run.run_id,
        app=run.tags.get("rai-pipelines/app") or config.get("app") or "(unknown)",
        bad_version=str(config.get("bad_version") or ""),
        error=redact(error),
        links=alerts.run_link(run.run_id),
    )
    alerts.send(alert, context.log)
