import warnings

import dagster as dg

# The daily job runs one partition at a time, so it backfills one run per day whatever cost_ledger's
# own policy (a backfill of the ledger alone is one run); Dagster says so at every load otherwise.
warnings.filterwarnings("ignore", message="Asset job daily_governance_job materializes assets with varying Backfill")

daily_governance_job = dg.define_asset_job(
    "daily_governance_job",
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets("gitops_rollback"),
    description="One day of the loop: cost ledger, feature snapshots, drift and fairness reports, governance facts.",
)

gitops_rollback_job = dg.define_asset_job(
    "gitops_rollback_job",
    selection=dg.AssetSelection.assets("gitops_rollback"),
    description="Returns a model to its last compliant version by a commit to the GitOps repository.",
    tags={"rai-pipelines/remediation": "rollback"},
)

late_labels_job = dg.define_asset_job(
    "late_labels_job",
    selection=dg.AssetSelection.groups("monitoring") | dg.AssetSelection.assets("governance_facts"),
    description="Re-materialises the days that late labels belong to: the model's feature snapshot and reports, "
    "then the governance facts. Launched by late_labels_sensor with the affected model's assets only.",
)
