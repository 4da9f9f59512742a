"""The lake's datasets, named once: each is also the name of the asset that writes it."""

COST_LEDGER = "cost_ledger"
COST_LEDGER_QUARANTINE = "cost_ledger_quarantine"  # export rows refused, per billing period
INFERENCE_LOGS = "inference_logs"
LABELS = "labels"
REFERENCE = "reference"
REFERENCE_PROFILE = "reference_profile"
EXPLANATION_MODEL = "explanation_model"  # a surrogate model of each model's scores, per reference
FEATURE_SNAPSHOTS = "feature_snapshots"
FEATURE_SNAPSHOTS_REJECTED = "feature_snapshots_rejected"
DRIFT_REPORT = "drift_report"
FAIRNESS_REPORT = "fairness_report"
PERFORMANCE_REPORT = "performance_report"
EXPLANATION_REPORT = "explanation_report"
MODEL_REPORTS = (DRIFT_REPORT, FAIRNESS_REPORT, PERFORMANCE_REPORT)
GOVERNANCE_FACTS = "governance_facts"
