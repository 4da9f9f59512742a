package apexlogic.ai_governance_test

import data.apexlogic.ai_governance

# These tests run with the bundle's own data (data.yaml and the team/model overrides): they check
# the shipped thresholds as well as the rules.

deployment(app, version, team) := {
	"apiVersion": "apps/v1",
	"kind": "Deployment",
	"metadata": {"name": app, "labels": {"app": app, "team": team}},
	"spec": {"template": {"metadata": {"labels": {"app": app, "model-version": version}}}},
}

credit_v2 := deployment("credit-scoring-ai", "2.0.0", "credit-risk")

screening := object.union(deployment("employment-screening-ai", "3.2.0", "people-analytics"), {"metadata": {"labels": {
	"app": "employment-screening-ai",
	"team": "people-analytics",
	"rai-pipelines.io/governed": "true",
}}})

unfair := "AI model fairness score below acceptable threshold (0.8)."

expensive := "Estimated inference cost exceeds budget (0.005 USD)."

messages(manifest, facts) := {v.msg | some v in ai_governance.violations(manifest, facts)}

test_compliant_model_is_allowed if {
	facts := {"fairness_score": 0.93, "estimated_cost_per_inference_usd": 0.0013}
	count(ai_governance.violations(deployment("credit-scoring-ai", "1.4.2", "credit-risk"), facts)) == 0
}

test_unfair_model_is_denied_with_rollback if {
	facts := {"fairness_score": 0.67, "estimated_cost_per_inference_usd": 0.001}
	ai_governance.violations(credit_v2, facts) == {{"rule": "fairness", "msg": unfair, "severity": "rollback"}}
}

test_expensive_model_is_denied_with_rollback if {
	facts := {"fairness_score": 0.95, "estimated_cost_per_inference_usd": 0.0081}
	ai_governance.violations(credit_v2, facts) == {{"rule": "cost", "msg": expensive, "severity": "rollback"}}
}

test_both_violations_are_reported if {
	messages(credit_v2, {"fairness_score": 0.5, "estimated_cost_per_inference_usd": 0.02}) == {unfair, expensive}
}

test_thresholds_are_strict_inequalities if {
	count(ai_governance.violations(credit_v2, {"fairness_score": 0.8, "estimated_cost_per_inference_usd": 0.005})) == 0
}

test_other_apps_are_not_governed_by_default if {
	count(ai_governance.violations(deployment("recommender", "2.0.0", "x"), {"fairness_score": 0.1})) == 0
}

test_governed_label_opts_a_deployment_in if {
	messages(screening, {"fairness_score": 0.67, "estimated_cost_per_inference_usd": 0.0005}) == {unfair}
}

test_only_deployments_are_checked if {
	manifest := object.union(credit_v2, {"kind": "StatefulSet"})
	count(ai_governance.violations(manifest, {"fairness_score": 0.1, "estimated_cost_per_inference_usd": 1})) == 0
}

test_missing_facts_are_a_violation_not_a_pass if {
	ai_governance.violations(credit_v2, null) == {{
		"rule": "facts_missing",
		"msg": "No governance facts for model version 2.0.0: compliance cannot be shown.",
		"severity": "alert",
	}}
}

test_missing_fairness_score_is_a_violation_when_fairness_applies if {
	facts := {"fairness_applicable": true, "estimated_cost_per_inference_usd": 0.001}
	{v.rule | some v in ai_governance.violations(screening, facts)} == {"facts_missing"}
}

alert_only(facts) if {
	{v.severity | some v in ai_governance.violations(credit_v2, facts)} == {"alert"}
}

test_incomplete_or_mistyped_facts_are_a_violation_not_a_pass if {
	alert_only({})
	alert_only({"fairness_score": 0.9})
	alert_only({"estimated_cost_per_inference_usd": 0.001})
	alert_only({"fairness_applicable": true, "fairness_score": null, "estimated_cost_per_inference_usd": 0.001})
	alert_only({"fairness_score": 0.9, "estimated_cost_per_inference_usd": "0.9"})
	alert_only({"fairness_score": false, "estimated_cost_per_inference_usd": 0.001})
	alert_only("not an object")
}

test_a_governed_deployment_without_a_version_label_is_a_violation if {
	manifest := object.union(credit_v2, {"spec": {"template": {"metadata": {"labels": {"app": "credit-scoring-ai"}}}}})
	manifest.spec.template.metadata.labels == {"app": "credit-scoring-ai"}
	{v.rule | some v in ai_governance.violations(manifest, null)} == {"facts_missing"}
}

test_no_fairness_score_is_fine_when_no_attribute_is_enforced if {
	facts := {"fairness_applicable": false, "estimated_cost_per_inference_usd": 0.001}
	count(ai_governance.violations(credit_v2, facts)) == 0
}

test_drift_warns_without_violating if {
	facts := {"fairness_score": 0.9, "estimated_cost_per_inference_usd": 0.001, "drift_share": 0.57,
		"drifted_features": ["car_value", "loan_length"]}
	count(ai_governance.violations(credit_v2, facts)) == 0
	ai_governance.warnings(credit_v2, facts) == {"Input drift on 0.57 of the features (car_value, loan_length), above 0.3."}
}

test_team_threshold_overrides_the_organisation if {
	facts := {"fairness_score": 0.9, "drift_share": 0.4, "drifted_features": ["AGEP"]}
	ai_governance.threshold(screening, "drift_share_warn") == 0.5
	ai_governance.threshold(credit_v2, "drift_share_warn") == 0.3
	count(ai_governance.warnings(screening, facts)) == 0
	count(ai_governance.warnings(credit_v2, facts)) == 1
}

test_model_version_is_read_from_the_pod_template_label if {
	ai_governance.model_version(credit_v2) == "2.0.0"
}

test_a_score_below_the_threshold_with_an_interval_reaching_it_warns_and_does_not_deny if {
	facts := {"fairness_score": 0.74, "fairness_score_ci_lower": 0.61, "fairness_score_ci_upper": 0.86, "estimated_cost_per_inference_usd": 0.001}
	count(ai_governance.violations(credit_v2, facts)) == 0
	count(ai_governance.warnings(credit_v2, facts)) == 1
}

test_a_score_confidently_below_the_threshold_denies if {
	facts := {"fairness_score": 0.67, "fairness_score_ci_lower": 0.65, "fairness_score_ci_upper": 0.69, "estimated_cost_per_inference_usd": 0.001}
	ai_governance.violations(credit_v2, facts) == {{"rule": "fairness", "msg": unfair, "severity": "rollback"}}
	count(ai_governance.warnings(credit_v2, facts)) == 0
}
