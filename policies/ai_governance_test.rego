package apexlogic.ai_governance_test

import data.apexlogic.ai_governance

deployment(app, version) := {
	"apiVersion": "apps/v1",
	"kind": "Deployment",
	"metadata": {"name": app, "labels": {"app": app}},
	"spec": {"template": {"metadata": {"labels": {"app": app, "model-version": version}}}},
}

credit_v2 := deployment("credit-scoring-ai", "2.0.0")

unfair := "AI model fairness score below acceptable threshold (0.8)."

expensive := "Estimated inference cost exceeds budget (0.005 USD)."

test_compliant_model_is_allowed if {
	facts := {"fairness_score": 0.93, "estimated_cost_per_inference_usd": 0.0013}
	count(ai_governance.violations(deployment("credit-scoring-ai", "1.4.2"), facts)) == 0
}

test_unfair_model_is_denied if {
	facts := {"fairness_score": 0.67, "estimated_cost_per_inference_usd": 0.001}
	ai_governance.violations(credit_v2, facts) == {unfair}
}

test_expensive_model_is_denied if {
	facts := {"fairness_score": 0.95, "estimated_cost_per_inference_usd": 0.0081}
	ai_governance.violations(credit_v2, facts) == {expensive}
}

test_both_violations_are_reported if {
	facts := {"fairness_score": 0.5, "estimated_cost_per_inference_usd": 0.02}
	ai_governance.violations(credit_v2, facts) == {unfair, expensive}
}

test_thresholds_are_strict_inequalities if {
	facts := {"fairness_score": 0.8, "estimated_cost_per_inference_usd": 0.005}
	count(ai_governance.violations(credit_v2, facts)) == 0
}

test_other_apps_are_not_governed_by_default if {
	count(ai_governance.violations(deployment("recommender", "2.0.0"), {"fairness_score": 0.1})) == 0
}

test_governed_label_opts_a_deployment_in if {
	manifest := object.union(deployment("employment-screening-ai", "3.2.0"), {"metadata": {
		"name": "employment-screening-ai",
		"labels": {"app": "employment-screening-ai", "rai-pipelines.io/governed": "true"},
	}})
	facts := {"fairness_score": 0.67, "estimated_cost_per_inference_usd": 0.0005}
	ai_governance.violations(manifest, facts) == {unfair}
}

test_only_deployments_are_checked if {
	manifest := object.union(credit_v2, {"kind": "StatefulSet"})
	count(ai_governance.violations(manifest, {"fairness_score": 0.1, "estimated_cost_per_inference_usd": 1})) == 0
}

test_model_version_is_read_from_the_pod_template_label if {
	ai_governance.model_version(credit_v2) == "2.0.0"
}
