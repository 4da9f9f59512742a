# Unit tests of the governance policies, as `opa test` runs them (and `rai-pipelines policy test`,
# with OPA's own evaluator). They run with the bundle's own data (governance/data.yaml and the team
# overrides), so they check the shipped thresholds as well as the rules; facts, registry and
# overrides are replaced per test with `with`.
package apexlogic.ai_governance_test

import data.apexlogic.ai_governance

deployment(app, version, team) := {
	"apiVersion": "apps/v1",
	"kind": "Deployment",
	"metadata": {"name": app, "labels": {"app": app, "team": team}},
	"spec": {"template": {
		"metadata": {"labels": {"app": app, "model-version": version}},
		"spec": {"containers": [{"name": "model", "image": sprintf("registry.example.com/%s:%s", [app, version])}]},
	}},
}

credit_v2 := deployment("credit-scoring-ai", "2.0.0", "credit-risk")

screening := json.patch(
	deployment("employment-screening-ai", "3.2.0", "people-analytics"),
	[{"op": "add", "path": "/metadata/labels/rai-pipelines.io~1governed", "value": "true"}],
)

unfair := "AI model fairness score below acceptable threshold (0.8)."

expensive := "Estimated inference cost exceeds budget (0.005 USD)."

fair_and_cheap := {"fairness_score": 0.93, "estimated_cost_per_inference_usd": 0.0013}

messages contains v.msg if some v in ai_governance.violation

rules contains v.rule if some v in ai_governance.violation

test_compliant_model_is_allowed if {
	d := ai_governance.decision with input as credit_v2 with data.ai_models as {"2.0.0": fair_and_cheap}
	d == {"deny": set(), "warn": set(), "violations": set(), "warnings": set()}
}

test_unfair_model_is_denied_with_rollback if {
	facts := {"fairness_score": 0.67, "estimated_cost_per_inference_usd": 0.001}
	ai_governance.violation == {{"rule": "fairness", "msg": unfair, "severity": "rollback"}}
		with input as credit_v2
		with data.ai_models as {"2.0.0": facts}
}

test_expensive_model_is_denied_with_rollback if {
	facts := {"fairness_score": 0.95, "estimated_cost_per_inference_usd": 0.0081}
	ai_governance.violation == {{"rule": "cost", "msg": expensive, "severity": "rollback"}}
		with input as credit_v2
		with data.ai_models as {"2.0.0": facts}
}

test_both_violations_are_denied if {
	facts := {"fairness_score": 0.5, "estimated_cost_per_inference_usd": 0.02}
	ai_governance.deny == {unfair, expensive} with input as credit_v2 with data.ai_models as {"2.0.0": facts}
}

test_thresholds_are_strict_inequalities if {
	facts := {"fairness_score": 0.8, "estimated_cost_per_inference_usd": 0.005}
	count(ai_governance.violation) == 0 with input as credit_v2 with data.ai_models as {"2.0.0": facts}
}

test_facts_of_another_version_never_apply if {
	messages == {"No governance facts for model version 2.0.0: compliance cannot be shown."}
		with input as credit_v2
		with data.ai_models as {"1.4.2": fair_and_cheap}
}

test_other_apps_are_not_governed_by_default if {
	count(ai_governance.violation) == 0
		with input as deployment("recommender", "2.0.0", "x")
		with data.ai_models as {"2.0.0": {"fairness_score": 0.1}}
}

test_governed_label_opts_a_deployment_in if {
	facts := {"fairness_score": 0.67, "estimated_cost_per_inference_usd": 0.0005}
	messages == {unfair} with input as screening with data.ai_models as {"3.2.0": facts}
}

test_only_deployments_are_checked if {
	count(ai_governance.violation) == 0
		with input as json.patch(credit_v2, [{"op": "replace", "path": "/kind", "value": "StatefulSet"}])
		with data.ai_models as {"2.0.0": {"fairness_score": 0.1, "estimated_cost_per_inference_usd": 1}}
}

test_missing_fairness_score_is_a_violation_when_fairness_applies if {
	facts := {"fairness_applicable": true, "estimated_cost_per_inference_usd": 0.001}
	messages == {"Fairness score missing for a model with protected attributes: compliance cannot be shown."}
		with input as screening
		with data.ai_models as {"3.2.0": facts}
}

incomplete_facts := [
	{},
	{"fairness_score": 0.9},
	{"estimated_cost_per_inference_usd": 0.001},
	{"fairness_applicable": null, "fairness_score": null, "estimated_cost_per_inference_usd": 0.001},
	{"fairness_applicable": "yes", "fairness_score": 0.9, "estimated_cost_per_inference_usd": 0.001},
	{"fairness_score": 0.9, "estimated_cost_per_inference_usd": "0.9"},
	{"fairness_score": false, "estimated_cost_per_inference_usd": 0.001},
	{"fairness_score": 0.9, "estimated_cost_per_inference_usd": -0.001},
	{"fairness_score": -0.2, "estimated_cost_per_inference_usd": 0.001},
	{"fairness_score": 1.3, "estimated_cost_per_inference_usd": 0.001},
	"not an object",
]

test_incomplete_or_mistyped_facts_are_a_violation_not_a_pass if {
	every facts in incomplete_facts {
		rules == {"facts_missing"} with input as credit_v2 with data.ai_models as {"2.0.0": facts}
		messages == {"Governance facts for model version 2.0.0 are incomplete or mistyped: compliance cannot be shown."}
			with input as credit_v2
			with data.ai_models as {"2.0.0": facts}
	}
}

test_a_governed_deployment_without_a_version_label_is_a_violation if {
	unlabelled := json.remove(credit_v2, ["spec/template/metadata/labels/model-version"])
	messages == {"Governed Deployment has no model-version label on its pod template: compliance cannot be shown."}
		with input as unlabelled
		with data.ai_models as {"2.0.0": fair_and_cheap}
}

test_no_fairness_score_is_fine_when_no_attribute_is_enforced if {
	facts := {"fairness_applicable": false, "estimated_cost_per_inference_usd": 0.001}
	count(ai_governance.violation) == 0 with input as credit_v2 with data.ai_models as {"2.0.0": facts}
}

test_drift_warns_without_violating if {
	facts := object.union(fair_and_cheap, {"drift_share": 0.57, "drifted_features": ["car_value", "loan_length"]})
	d := ai_governance.decision with input as credit_v2 with data.ai_models as {"2.0.0": facts}
	d.violations == set()
	d.warn == {"Input drift on 0.57 of the features (car_value, loan_length), above 0.3."}
}

test_each_warning_names_its_rule if {
	drifting := {"fairness_score": 0.74, "fairness_score_ci_upper": 0.86, "estimated_cost_per_inference_usd": 0.0013, "drift_share": 0.57}
	d := ai_governance.decision with input as credit_v2 with data.ai_models as {"2.0.0": drifting}
	{w.rule | some w in d.warnings} == {"drift", "fairness"}
}

test_drift_warns_even_when_the_features_are_not_named if {
	facts := object.union(fair_and_cheap, {"drift_share": 0.57, "drifted_features": [1, null]})
	ai_governance.warn == {"Input drift on 0.57 of the features (not named), above 0.3."}
		with input as credit_v2
		with data.ai_models as {"2.0.0": facts}
}

test_a_score_below_the_threshold_with_an_interval_reaching_it_warns_and_does_not_deny if {
	facts := object.union(fair_and_cheap, {"fairness_score": 0.74, "fairness_score_ci_upper": 0.86})
	d := ai_governance.decision with input as credit_v2 with data.ai_models as {"2.0.0": facts}
	d.violations == set()
	d.warn == {"Fairness score 0.74 is below 0.8 but its 95% interval reaches 0.86: not enough evidence to act; watch it."}
}

test_a_score_confidently_below_the_threshold_denies if {
	facts := object.union(fair_and_cheap, {"fairness_score": 0.67, "fairness_score_ci_upper": 0.69})
	d := ai_governance.decision with input as credit_v2 with data.ai_models as {"2.0.0": facts}
	d.deny == {unfair}
	d.warn == set()
}

# --- whose thresholds and severities apply ----------------------------------------------------------

drifting := object.union(fair_and_cheap, {"drift_share": 0.4, "drifted_features": ["AGEP"]})

test_team_threshold_overrides_the_organisation if {
	ai_governance.threshold("drift_share_warn") == 0.5 with input as screening
	ai_governance.threshold("drift_share_warn") == 0.3 with input as credit_v2
	count(ai_governance.warn) == 0 with input as screening with data.ai_models as {"3.2.0": drifting}
	count(ai_governance.warn) == 1 with input as credit_v2 with data.ai_models as {"2.0.0": drifting}
}

test_model_data_overrides_team_and_organisation if {
	overrides := {"credit-scoring-ai": {
		"thresholds": {"estimated_cost_per_inference_usd_max": 0.01},
		"severity": {"cost": "review"},
	}}
	facts := {"fairness_score": 0.9, "estimated_cost_per_inference_usd": 0.02}
	ai_governance.violation == {{
		"rule": "cost",
		"msg": "Estimated inference cost exceeds budget (0.01 USD).",
		"severity": "review",
	}}
		with input as credit_v2
		with data.ai_models as {"2.0.0": facts}
		with data.governance.models as overrides
}

test_team_severity_overrides_the_organisation if {
	facts := {"fairness_score": 0.5, "estimated_cost_per_inference_usd": 0.001}
	ai_governance.violation == {{"rule": "fairness", "msg": unfair, "severity": "review"}}
		with input as screening
		with data.ai_models as {"3.2.0": facts}
		with data.governance.teams["people-analytics"].severity as {"fairness": "review"}
}

test_the_registry_not_the_label_decides_the_team if {
	labelled_credit_risk := json.patch(screening, [{"op": "replace", "path": "/metadata/labels/team", "value": "credit-risk"}])
	d := ai_governance.decision
		with input as labelled_credit_risk
		with data.ai_models as {"3.2.0": drifting}
		with data.registry.teams as {"employment-screening-ai": "people-analytics"}
	d.warn == {"Team label credit-risk differs from the model registry's team people-analytics for employment-screening-ai: the registry's thresholds apply."}
	ai_governance.team == "credit-risk" with input as labelled_credit_risk
}

test_model_version_is_read_from_the_pod_template_label if {
	ai_governance.model_version == "2.0.0" with input as credit_v2
}

test_facts_a_day_behind_are_current if {
	facts := object.union(fair_and_cheap, {"facts_age_days": 1})
	d := ai_governance.decision with input as credit_v2 with data.ai_models as {"2.0.0": facts}
	d == {"deny": set(), "warn": set(), "violations": set(), "warnings": set()}
}

test_facts_two_days_behind_warn if {
	facts := object.union(fair_and_cheap, {"facts_age_days": 2})
	ai_governance.warning == {{
		"rule": "facts_stale",
		"msg": "Governance facts are 2 days behind the newest (warn above 1).",
	}}
		with input as credit_v2
		with data.ai_models as {"2.0.0": facts}
	count(ai_governance.violation) == 0 with input as credit_v2 with data.ai_models as {"2.0.0": facts}
}

test_facts_beyond_the_limit_are_a_violation_with_its_severity if {
	facts := object.union(fair_and_cheap, {"facts_age_days": 4})
	msg := "Governance facts are 4 days behind the newest (limit 3): compliance is not current."
	ai_governance.violation == {{"rule": "facts_stale", "msg": msg, "severity": "alert"}}
		with input as credit_v2
		with data.ai_models as {"2.0.0": facts}
	count(ai_governance.warning) == 0 with input as credit_v2 with data.ai_models as {"2.0.0": facts}
	ai_governance.violation == {{"rule": "facts_stale", "msg": msg, "severity": "rollback"}}
		with input as credit_v2
		with data.ai_models as {"2.0.0": facts}
		with data.governance.severity.facts_stale as "rollback"
}

test_reordered_attributions_warn if {
	facts := object.union(fair_and_cheap, {"attribution_ndcg": 0.85})
	ai_governance.warning == {{
		"rule": "explanations",
		"msg": "Feature attributions reordered: nDCG 0.85 against the reference, below 0.9.",
	}}
		with input as credit_v2
		with data.ai_models as {"2.0.0": facts}
	count(ai_governance.violation) == 0 with input as credit_v2 with data.ai_models as {"2.0.0": facts}
	count(ai_governance.warning) == 0
		with input as credit_v2
		with data.ai_models as {"2.0.0": object.union(fair_and_cheap, {"attribution_ndcg": 0.95})}
}
