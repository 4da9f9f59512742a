# Unit tests of the FinOps rules (finops.rego), run with the bundle's own thresholds, as
# `opa test policies/` and `rai-pipelines policy test` run them.
package apexlogic.ai_governance_finops_test

import data.apexlogic.ai_governance

credit := {
	"apiVersion": "apps/v1",
	"kind": "Deployment",
	"metadata": {"name": "credit-scoring-ai", "labels": {"app": "credit-scoring-ai", "team": "credit-risk"}},
	"spec": {"template": {
		"metadata": {"labels": {"app": "credit-scoring-ai", "model-version": "2.0.0"}},
		"spec": {"containers": [{"name": "model", "image": "registry.example.com/credit-scoring-ai:2.0.0"}]},
	}},
}

base := {"fairness_score": 0.93, "estimated_cost_per_inference_usd": 0.0013}

rules contains v.rule if some v in ai_governance.violation

warned contains w.rule if some w in ai_governance.warning

test_cheap_on_budget_without_anomalies_is_clean if {
	facts := object.union(base, {
		"cost_per_inference_7d_usd": 0.001,
		"budget_burn_rate": 0.8,
		"cost_anomaly_open_count": 0,
		"cost_anomaly_impact_usd": 0,
	})
	d := ai_governance.decision with input as credit with data.ai_models as {"2.0.0": facts}
	d == {"deny": set(), "warn": set(), "violations": set(), "warnings": set()}
}

test_cost_per_inference_above_max_asks_for_review if {
	facts := object.union(base, {"cost_per_inference_7d_usd": 0.0125})
	ai_governance.violation == {{
		"rule": "cost_per_inference",
		"severity": "review",
		"msg": "Allocated cost per inference over 7 days is 0.0125 USD, above the limit of 0.01 USD.",
	}}
		with input as credit
		with data.ai_models as {"2.0.0": facts}
}

test_cost_per_inference_between_warn_and_max_warns_only if {
	facts := object.union(base, {"cost_per_inference_7d_usd": 0.006})
	count(ai_governance.violation) == 0 with input as credit with data.ai_models as {"2.0.0": facts}
	warned == {"cost_per_inference"} with input as credit with data.ai_models as {"2.0.0": facts}
}

test_cost_per_inference_limit_is_strict if {
	facts := object.union(base, {"cost_per_inference_7d_usd": 0.01})
	rules == set() with input as credit with data.ai_models as {"2.0.0": facts}
}

test_budget_burn_above_max_alerts_with_the_overrun_date if {
	facts := object.union(base, {
		"budget_burn_rate": 1.8,
		"budget_projected_overrun_date": "2026-12-19",
		"budget_days_until_exhausted": 12,
	})
	ai_governance.violation == {{
		"rule": "budget",
		"severity": "alert",
		"msg": "Budget burning at 1.8 times the planned rate (limit 1.5); projected to overrun on 2026-12-19, 12 days of budget left.",
	}}
		with input as credit
		with data.ai_models as {"2.0.0": facts}
}

test_budget_burn_above_one_warns if {
	facts := object.union(base, {"budget_burn_rate": 1.2})
	rules == set() with input as credit with data.ai_models as {"2.0.0": facts}
	ai_governance.warn == {"Budget burning at 1.2 times the planned rate (warn above 1)."}
		with input as credit
		with data.ai_models as {"2.0.0": facts}
}

test_team_can_tighten_the_burn_rate if {
	facts := object.union(base, {"budget_burn_rate": 1.2})
	rules == {"budget"}
		with input as credit
		with data.ai_models as {"2.0.0": facts}
		with data.governance.teams as {"credit-risk": {"thresholds": {"budget_burn_rate_max": 1.1}}}
}

test_large_open_anomaly_is_a_violation_with_its_root_cause if {
	facts := object.union(base, {
		"cost_anomaly_open_count": 1,
		"cost_anomaly_impact_usd": 812.456,
		"cost_anomaly_root_cause": "service=AmazonEC2 (91%)",
	})
	ai_governance.deny == {"Open cost anomaly with an impact of 812.46 USD (limit 500 USD); root cause: service=AmazonEC2 (91%)."}
		with input as credit
		with data.ai_models as {"2.0.0": facts}
}

test_small_open_anomaly_warns if {
	facts := object.union(base, {"cost_anomaly_open_count": 2, "cost_anomaly_impact_usd": 42})
	rules == set() with input as credit with data.ai_models as {"2.0.0": facts}
	ai_governance.warn == {"2 open cost anomaly(ies), largest impact 42 USD; root cause: not named."}
		with input as credit
		with data.ai_models as {"2.0.0": facts}
}

test_closed_anomalies_are_quiet if {
	facts := object.union(base, {"cost_anomaly_open_count": 0, "cost_anomaly_impact_usd": 9000})
	count(ai_governance.decision.violations) + count(ai_governance.decision.warnings) == 0
		with input as credit
		with data.ai_models as {"2.0.0": facts}
}

test_mistyped_finops_fact_fails_closed if {
	facts := object.union(base, {"budget_burn_rate": "0.5"})
	ai_governance.violation == {{
		"rule": "facts_missing",
		"severity": "alert",
		"msg": "Governance fact budget_burn_rate is not a number: compliance cannot be shown.",
	}}
		with input as credit
		with data.ai_models as {"2.0.0": facts}
}

test_ungoverned_deployments_are_not_judged_on_cost if {
	other := json.patch(credit, [{"op": "replace", "path": "/metadata/labels/app", "value": "recommender"}])
	facts := object.union(base, {"cost_per_inference_7d_usd": 1, "budget_burn_rate": 9})
	count(ai_governance.violation) == 0 with input as other with data.ai_models as {"2.0.0": facts}
}
