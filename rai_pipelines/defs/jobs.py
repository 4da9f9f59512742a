import dagster as dg

from rai_pipelines.defs.keys import GITOPS_ROLLBACK, GOVERNANCE_DECISIONS

daily_governance_job = dg.define_asset_job(
    "daily_governance_job",
    selection=dg.AssetSelection.all()
    - dg.AssetSelection.assets(GITOPS_ROLLBACK).without_checks()
    - dg.AssetSelection.checks_for_assets(GITOPS_ROLLBACK),
    description="One day of the loop: cost ledger, feature snapshots, drift and fairness reports, governance facts.",
)

gitops_rollback_job = dg.define_asset_job(
    "gitops_rollback_job",
    # the verification check waits for the restored version's next facts: the policy sensor records it
    selection=dg.AssetSelection.assets(GITOPS_ROLLBACK).without_checks(),
    description="Returns a model to its last compliant version by a commit to the GitOps repository.",
    tags={"rai-pipelines/remediation": "rollback"},
    # One step: run it in the run's own process. The default executor would start a second Python
    # process that loads the code location again, about half of a rollback run's CPU (remediation
    # latency benchmark: 50 simultaneous violations queue on that cost).
    executor_def=dg.in_process_executor,
)

late_labels_job = dg.define_asset_job(
    "late_labels_job",
    # every model's monitoring assets and governance facts (the decisions are observed, not materialised)
    selection=dg.AssetSelection.groups("monitoring", "governance") - dg.AssetSelection.assets(GOVERNANCE_DECISIONS),
    description="Re-materialises the days that late labels belong to: the model's feature snapshot and reports, "
    "then its governance facts. Launched by late_labels_sensor with the affected model's assets only.",
)
