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
# remediation (rollback, review, alert). Team and model modules in this package add their own
# `violation contains finding(input, "<rule>", msg)` (or plain `deny`/`warn` messages, which
# alert): a deny at any level denies. The facts are looked up once: each lookup in a large
# data.ai_models costs the embedded engine time in proportion to its size.
decision := {"deny": deny, "warn": warn, "violations": violation}

core := decide(input, object.get(ai_models, model_version(input), null))

violation contains v if {
	some v in core.violations
}

deny contains v.msg if {
	some v in violation
}

warn contains msg if {
	some msg in core.warn
}

decide(manifest, facts) := {"warn": warnings(manifest, facts), "violations": violations(manifest, facts)}

violations(manifest, facts) := (({v | v := fairness_violation(manifest, facts)} | {v | v := cost_violation(manifest, facts)}) | (({v | v := fairness_missing(manifest, facts)} | {v | v := facts_missing(manifest, facts)}) | ({v | v := facts_incomplete(manifest, facts)} | {v | v := label_missing(manifest)})))

warnings(manifest, facts) := ({msg | msg := drift_warning(manifest, facts)} | {msg | msg := fairness_uncertain_warning(manifest, facts)}) | {msg | msg := team_label_warning(manifest)}

# When the facts carry the upper end of the score's bootstrap interval, the violation needs that
# end below the threshold too: a small group's noise alone does not roll a model back (it warns).
fairness_violation(manifest, facts) := finding(manifest, "fairness", sprintf("AI model fairness score below acceptable threshold (%v).", [limit])) if {
	governed(manifest)
	limit := threshold(manifest, "fairness_score_min")
	is_number(facts.fairness_score)
	facts.fairness_score < limit
	fairness_upper(facts) < limit
}

fairness_upper(facts) := facts.fairness_score_ci_upper if {
	is_number(facts.fairness_score_ci_upper)
} else := facts.fairness_score

fairness_uncertain_warning(manifest, facts) := concat("", [
	"Fairness score ", sprintf("%v", [round(facts.fairness_score * 1000) / 1000]), " is below ", sprintf("%v", [limit]),
	" but its 95% interval reaches ", sprintf("%v", [round(facts.fairness_score_ci_upper * 1000) / 1000]),
	": not enough evidence to act; watch it.",
]) if {
	governed(manifest)
	limit := threshold(manifest, "fairness_score_min")
	is_number(facts.fairness_score)
	facts.fairness_score < limit
	is_number(facts.fairness_score_ci_upper)
	facts.fairness_score_ci_upper >= limit
}

cost_violation(manifest, facts) := finding(manifest, "cost", sprintf("Estimated inference cost exceeds budget (%v USD).", [limit])) if {
	governed(manifest)
	limit := threshold(manifest, "estimated_cost_per_inference_usd_max")
	is_number(facts.estimated_cost_per_inference_usd)
	facts.estimated_cost_per_inference_usd > limit
}

# Facts missing for a governed model version never read as compliance.
facts_missing(manifest, facts) := finding(manifest, "facts_missing", msg) if {
	governed(manifest)
	facts == null
	is_string(model_version(manifest))
	msg := concat("", ["No governance facts for model version ", model_version(manifest), ": compliance cannot be shown."])
}

# Facts that exist but cannot show compliance: the cost must be a number, and the fairness score
# must be one unless the facts say fairness does not apply (no protected attribute enforced).
facts_incomplete(manifest, facts) := finding(manifest, "facts_missing", msg) if {
	governed(manifest)
	facts != null
	incomplete(facts)
	msg := concat("", ["Governance facts for model version ", model_version(manifest), " are incomplete or mistyped: compliance cannot be shown."])
}

incomplete(facts) if not is_object(facts)

incomplete(facts) if not is_number(object.get(facts, "estimated_cost_per_inference_usd", null))

incomplete(facts) if {
	object.get(facts, "fairness_applicable", null) == null
	not is_number(object.get(facts, "fairness_score", null))
}

incomplete(facts) if {
	applicable := object.get(facts, "fairness_applicable", null)
	applicable != null
	not is_boolean(applicable)
}

label_missing(manifest) := finding(manifest, "facts_missing", "Governed Deployment has no model-version label on its pod template: compliance cannot be shown.") if {
	governed(manifest)
	not is_string(model_version(manifest))
}

# A model with protected attributes must have a fairness score; its absence is not a pass.
fairness_missing(manifest, facts) := finding(manifest, "facts_missing", "Fairness score missing for a model with protected attributes: compliance cannot be shown.") if {
	governed(manifest)
	facts.fairness_applicable == true
	not is_number(object.get(facts, "fairness_score", null))
}

drift_warning(manifest, facts) := concat("", [
	"Input drift on ", sprintf("%v", [round(facts.drift_share * 100) / 100]), " of the features (",
	concat(", ", facts.drifted_features), "), above ", sprintf("%v", [limit]), ".",
]) if {
	governed(manifest)
	limit := threshold(manifest, "drift_share_warn")
	is_number(facts.drift_share)
	facts.drift_share > limit
}

finding(manifest, rule, msg) := {"rule": rule, "msg": msg, "severity": severity(manifest, rule)}

threshold(manifest, name) := value if {
	value := governance.models[label(manifest, "app")].thresholds[name]
} else := value if {
	value := governance.teams[team(manifest)].thresholds[name]
} else := governance.org.thresholds[name]

severity(manifest, rule) := value if {
	value := governance.models[label(manifest, "app")].severity[rule]
} else := value if {
	value := governance.teams[team(manifest)].severity[rule]
} else := governance.org.severity[rule]

label(manifest, name) := object.get(manifest, ["metadata", "labels", name], "")

# The team whose thresholds apply: the model registry's (data.registry.teams, supplied by the
# pipeline), and the Deployment's own team label only for a model the registry does not declare;
# a label is written by whoever writes the manifest under review.
team(manifest) := t if {
	t := data.registry.teams[label(manifest, "app")]
} else := label(manifest, "team")

team_label_warning(manifest) := concat("", [
	"Team label ", label(manifest, "team"), " differs from the model registry's team ", t, " for ",
	label(manifest, "app"), ": the registry's thresholds apply.",
]) if {
	governed(manifest)
	t := data.registry.teams[label(manifest, "app")]
	label(manifest, "team") != ""
	label(manifest, "team") != t
}

# The brief governs the credit-scoring-ai Deployment; any other Deployment opts in with the label
# rai-pipelines.io/governed: "true".
governed(manifest) if {
	manifest.kind == "Deployment"
	label(manifest, "app") == "credit-scoring-ai"
}

governed(manifest) if {
	manifest.kind == "Deployment"
	label(manifest, "rai-pipelines.io/governed") == "true"
}

model_version(manifest) := object.get(manifest, ["spec", "template", "metadata", "labels", "model-version"], null)
