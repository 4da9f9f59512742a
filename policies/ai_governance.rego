# Governance policies for deployed models, Rego v1.
#
# The thresholds and severities come from the bundle's data, organisation-wide (data.yaml at the
# bundle root) and overridden per team (teams/<team>/) and per model (models/<model>/): the most
# specific level that sets a value wins. A deny at any level denies.
#
# Messages put strings together with concat, never sprintf: regopy 1.5.2 quotes a string formatted
# with %s or %v and then emits invalid JSON.
#
# The rules are written through functions of (manifest, one version's facts) so that unit tests
# call them with literal arguments: the embedded engine (regopy 1.5.2) crashes on `with ... as`.
package apexlogic.ai_governance

import data.ai_models
import data.governance

# The decision the loop and the gate read: the brief's deny messages, warnings that alert without
# blocking, and every violation with the rule that found it and the severity that decides the
# remediation (rollback, review, alert). The facts are looked up once: each lookup in a large
# data.ai_models costs the embedded engine time in proportion to its size.
decision := decide(input, object.get(ai_models, model_version(input), null))

deny contains msg if {
	some msg in decision.deny
}

warn contains msg if {
	some msg in decision.warn
}

violation contains v if {
	some v in decision.violations
}

decide(manifest, facts) := {"deny": {v.msg | some v in found}, "warn": warnings(manifest, facts), "violations": found} if {
	found := violations(manifest, facts)
}

violations(manifest, facts) := (({v | v := fairness_violation(manifest, facts)} | {v | v := cost_violation(manifest, facts)}) | ({v | v := fairness_missing(manifest, facts)} | {v | v := facts_missing(manifest, facts)}))

warnings(manifest, facts) := {msg | msg := drift_warning(manifest, facts)}

fairness_violation(manifest, facts) := finding(manifest, "fairness", sprintf("AI model fairness score below acceptable threshold (%v).", [limit])) if {
	governed(manifest)
	limit := threshold(manifest, "fairness_score_min")
	facts.fairness_score < limit
}

cost_violation(manifest, facts) := finding(manifest, "cost", sprintf("Estimated inference cost exceeds budget (%v USD).", [limit])) if {
	governed(manifest)
	limit := threshold(manifest, "estimated_cost_per_inference_usd_max")
	facts.estimated_cost_per_inference_usd > limit
}

# Facts missing for a governed model version never read as compliance.
facts_missing(manifest, facts) := finding(manifest, "facts_missing", msg) if {
	governed(manifest)
	facts == null
	msg := concat("", ["No governance facts for model version ", model_version(manifest), ": compliance cannot be shown."])
}

# A model with protected attributes must have a fairness score; its absence is not a pass.
fairness_missing(manifest, facts) := finding(manifest, "facts_missing", "Fairness score missing for a model with protected attributes: compliance cannot be shown.") if {
	governed(manifest)
	facts.fairness_applicable == true
	not facts.fairness_score
}

drift_warning(manifest, facts) := concat("", [
	"Input drift on ", sprintf("%v", [facts.drift_share]), " of the features (",
	concat(", ", facts.drifted_features), "), above ", sprintf("%v", [limit]), ".",
]) if {
	governed(manifest)
	limit := threshold(manifest, "drift_share_warn")
	facts.drift_share > limit
}

finding(manifest, rule, msg) := {"rule": rule, "msg": msg, "severity": severity(manifest, rule)}

threshold(manifest, name) := value if {
	value := governance.models[manifest.metadata.labels.app].thresholds[name]
} else := value if {
	value := governance.teams[manifest.metadata.labels.team].thresholds[name]
} else := governance.org.thresholds[name]

severity(manifest, rule) := value if {
	value := governance.models[manifest.metadata.labels.app].severity[rule]
} else := value if {
	value := governance.teams[manifest.metadata.labels.team].severity[rule]
} else := governance.org.severity[rule]

# The brief governs the credit-scoring-ai Deployment; any other Deployment opts in with the label
# rai-pipelines.io/governed: "true".
governed(manifest) if {
	manifest.kind == "Deployment"
	manifest.metadata.labels.app == "credit-scoring-ai"
}

governed(manifest) if {
	manifest.kind == "Deployment"
	manifest.metadata.labels["rai-pipelines.io/governed"] == "true"
}

model_version(manifest) := manifest.spec.template.metadata.labels["model-version"]
