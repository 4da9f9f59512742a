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
# FinOps
SERVING_PRICES = "serving_prices"  # each declared serving resource's catalogue price, per day
MODEL_COSTS = "model_costs"  # the ledger allocated to model versions (FOCUS allocation columns)
MODEL_COST_SUMMARY = "model_cost_summary"  # per version and day: cost, inferences, cost per inference
COST_ANOMALIES = "cost_anomalies"
COST_FORECAST = "cost_forecast"
FINOPS_RECOMMENDATIONS = "finops_recommendations"
