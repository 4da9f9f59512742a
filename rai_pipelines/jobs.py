import dagster as dg

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
