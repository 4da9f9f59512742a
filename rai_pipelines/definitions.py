"""The one Definitions object of the code location. Resources are chosen here, from the
environment (rai_pipelines.settings): local folders and a local Git remote by default, S3 URIs and
a real Git remote in production."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import dagster as dg

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.core.registry import load_registry_reporting
from rai_pipelines.costs.sources import load_billing_sources
from rai_pipelines.costs.sources.aws_cur import AwsCurExport
from rai_pipelines.costs.sources.onprem import OnPremUsage
from rai_pipelines.defs.costs.assets import build_cost_ledger
from rai_pipelines.defs.costs.resources import BillingExportsResource
from rai_pipelines.defs.costs.sensors import build_restatement_sensor
from rai_pipelines.defs.finops.assets import build_catalogue_prices, build_model_costs
from rai_pipelines.defs.finops.recommendations import build_finops_recommendations
from rai_pipelines.defs.finops.reports import build_cost_anomalies, build_cost_forecast
from rai_pipelines.defs.finops.resources import CatalogueResource, FinOpsResource
from rai_pipelines.defs.gitops.assets import gitops_rollback
from rai_pipelines.defs.gitops.resources import GitOpsResource
from rai_pipelines.defs.gitops.verification import restored_version_complies
from rai_pipelines.defs.governance.alerts import AlertsResource, rollback_run_failure_alerts
from rai_pipelines.defs.governance.assets import build_governance_facts, governance_decisions
from rai_pipelines.defs.governance.resources import PolicyResource
from rai_pipelines.defs.governance.sensors import build_policy_sensor
from rai_pipelines.defs.jobs import daily_governance_job, gitops_rollback_job, late_labels_job
from rai_pipelines.defs.keys import facts_keys
from rai_pipelines.defs.monitoring.assets import build_model_assets
from rai_pipelines.defs.monitoring.sensors import build_late_labels_sensor, build_model_registry_sensor
from rai_pipelines.defs.partitions import daily_partitions
from rai_pipelines.defs.resources import LakeResource, ModelRegistryResource
from rai_pipelines.defs.schedules import daily_governance_schedule
from rai_pipelines.gitops.git import has_credentials, redact
from rai_pipelines.settings import Settings


def _billing(settings: Settings) -> BillingExportsResource:
    defaults = [
        AwsCurExport(root=root, layout=layout)
        for root, layout in ((settings.aws_cur_export_root, "legacy"), (settings.aws_cur2_export_root, "cur2"))
        if root.lower() != "none"  # RAI_AWS_CUR_EXPORT_ROOT=none: no such export
    ]
    if settings.onprem_usage_root.lower() != "none":
        defaults.append(OnPremUsage(usage_root=settings.onprem_usage_root, declaration=settings.onprem_declaration))
    declared = load_billing_sources(settings.billing_sources) if settings.billing_sources else {}
    return BillingExportsResource.of([*defaults, *(config for configs in declared.values() for config in configs)])


def _gitops(settings: Settings) -> GitOpsResource:
    if has_credentials(settings.gitops_remote):
        raise BadInputError(
            f"RAI_GITOPS_REMOTE {redact(settings.gitops_remote)} carries credentials: Dagster would store them "
            "in its repository snapshot and show them in the UI. Give the URL without them and the token in "
            "RAI_GITOPS_TOKEN (a mounted secret's environment variable)."
        )
    return GitOpsResource(
        remote=settings.gitops_remote,
        branch=settings.gitops_branch,
        workdir=settings.workdir,
        token=_secret("RAI_GITOPS_TOKEN"),
        signing_key=_secret("RAI_GITOPS_SIGNING_KEY"),
        signing_format=os.environ.get("RAI_GITOPS_SIGNING_FORMAT", "ssh"),
        overlay_glob=os.environ.get("RAI_GITOPS_OVERLAY_GLOB") or GitOpsResource.model_fields["overlay_glob"].default,
        source_glob=os.environ.get("RAI_GITOPS_SOURCE_GLOB") or None,
        repo_urls=[u for u in os.environ.get("RAI_GITOPS_REPO_URLS", "").split() if u],
        forge=os.environ.get("RAI_GITOPS_FORGE") or None,
        commit_url_template=os.environ.get("RAI_GITOPS_COMMIT_URL") or None,
        remediation_mode=os.environ.get("RAI_GITOPS_REMEDIATION_MODE") or "push",
        forge_api_url=os.environ.get("RAI_GITOPS_FORGE_API_URL") or None,
        forge_repository=os.environ.get("RAI_GITOPS_FORGE_REPOSITORY") or None,
        forge_token=_secret("RAI_GITOPS_FORGE_TOKEN") or _secret("RAI_GITOPS_TOKEN"),
    )


def _secret(name: str) -> dg.EnvVar | None:
    """A secret from the environment, given to Dagster by name: its value is never in a snapshot."""
    return dg.EnvVar(name) if os.environ.get(name) else None


def _alerts(settings: Settings) -> AlertsResource:
    return AlertsResource(
        slack_webhook_url=_secret("RAI_ALERT_SLACK_WEBHOOK_URL"),
        webhook_url=_secret("RAI_ALERT_WEBHOOK_URL"),
        webhook_secret=_secret("RAI_ALERT_WEBHOOK_SECRET"),
        outbox_path=str(Path(settings.home) / "alerts" / "outbox.jsonl"),
        dagster_url=os.environ.get("RAI_DAGSTER_URL") or None,
    )


def build_definitions(settings: Settings) -> dg.Definitions:
    # A bad model file leaves that model out, not every model: the registry sensor reports it on
    # each tick, and the policies (which read the registry strictly) fail closed until it is fixed.
    loaded, problems = load_registry_reporting(settings.model_registry_dir)
    for problem in problems.values():
        logging.getLogger("rai_pipelines").error("model file left out of the code location: %s", problem)
    specs = list(loaded.values())
    days = daily_partitions(settings.partitions_start)
    resources = {
        "lake": LakeResource(
            root=settings.lake_root,
            decision_log_dir=str(Path(settings.home) / "decision_log"),
            pseudonymisation_key_file=settings.pseudonymisation_key_file,
            create_missing_key=settings.create_missing_key,
        ),
        "billing": _billing(settings),
        "registry": ModelRegistryResource(directory=settings.model_registry_dir),
        "policy": PolicyResource(
            bundle_dir=settings.policy_dir, registry_dir=settings.model_registry_dir, engine=settings.policy_engine
        ),
        "gitops": _gitops(settings),
        "alerts": _alerts(settings),
        "catalogue": CatalogueResource(
            aws_endpoint=settings.aws_pricing_endpoint, gcp_endpoint=settings.gcp_catalog_endpoint
        ),
        "finops": FinOpsResource(
            config_file=settings.finops_config,
            telemetry_root=settings.telemetry_root,
            policy_remote=settings.policy_remote,
        ),
    }
    definitions = dg.Definitions(
        assets=[
            build_cost_ledger(days),
            build_catalogue_prices(days),
            build_model_costs(days),
            build_cost_anomalies(days),
            build_cost_forecast(days),
            build_finops_recommendations(days),
            *(asset for spec in specs for asset in build_model_assets(spec, days)),
            *(build_governance_facts(spec, days) for spec in specs),
            governance_decisions,
            gitops_rollback,
        ],
        asset_checks=[restored_version_complies],
        jobs=[daily_governance_job, gitops_rollback_job, late_labels_job],
        schedules=[daily_governance_schedule],
        sensors=[
            build_policy_sensor(gitops_rollback_job, facts_keys(specs)),
            build_late_labels_sensor(specs, late_labels_job),
            build_restatement_sensor(daily_governance_job, facts_keys(specs)),
            build_model_registry_sensor(),
            rollback_run_failure_alerts,
        ],
        resources=resources,
    )
    # The daily job runs one partition at a time, so it backfills one run per day whatever
    # cost_ledger's own policy (a backfill of the ledger alone is one run); Dagster says so each time
    # the job is resolved. The repository is resolved once here, with that one notice silenced, and
    # Dagster keeps the resolution.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Asset job daily_governance_job materializes assets with varying")
        definitions.get_repository_def()
    return definitions


@dg.definitions
def defs() -> dg.Definitions:
    """The code location Dagster loads: settings are read when Dagster asks, not at import."""
    return build_definitions(Settings.from_env())
