# The reference policy of the design brief, in Rego v1.
#
# `deny` is the brief's two rules. They are written through `violations`, a function of the
# manifest and that model version's facts, so that unit tests can call the policy with literal
# arguments (the embedded engine, regopy 1.5.2, crashes on `with ... as`). Passing one version's
# facts rather than the whole of data.ai_models also keeps evaluation fast with many versions.
package apexlogic.ai_governance

import data.ai_models

deny contains msg if {
	some msg in violations(input, ai_models[model_version(input)])
}

violations(manifest, facts) := {msg | msg := fairness_violation(manifest, facts)} | {msg | msg := cost_violation(manifest, facts)}

fairness_violation(manifest, facts) := "AI model fairness score below acceptable threshold (0.8)." if {
	governed(manifest)
	facts.fairness_score < 0.8
}

cost_violation(manifest, facts) := "Estimated inference cost exceeds budget (0.005 USD)." if {
	governed(manifest)
	facts.estimated_cost_per_inference_usd > 0.005
}

# The brief governs the credit-scoring-ai Deployment; any other Deployment opts in with the label
# rai-pipelines.io/governed: "true" and is held to the same thresholds.
governed(manifest) if {
	manifest.kind == "Deployment"
	manifest.metadata.labels.app == "credit-scoring-ai"
}

governed(manifest) if {
	manifest.kind == "Deployment"
	manifest.metadata.labels["rai-pipelines.io/governed"] == "true"
}

model_version(manifest) := manifest.spec.template.metadata.labels["model-version"]
