# Governance policies for deployed models, Rego v1.
#
# input is a rendered Kubernetes manifest; data.ai_models holds the governance facts of every model
# version (supplied by the pipeline); data.governance the thresholds and severities of this bundle
# (governance/data.yaml, overridden per team and per model: the most specific level that sets a
# value wins); data.registry.teams the team owning each model (from the model registry).
#
# Teams add rules to this package in their own modules:
#
#	violation contains finding("cost", "Credit-risk models may not run on GPU nodes.") if {
#		governed
#		team == "credit-risk"
#		startswith(input.spec.template.spec.nodeSelector["node.kubernetes.io/instance-type"], "g")
#	}
#
# A deny at any level denies; plain `warn` messages alert without blocking. Whether the model-version
# label is what runs (a version of the app's model whose image a container runs) is checked by the
# pipeline beside every decision, on either engine (rego.version_mismatch).
package apexlogic.ai_governance

import data.ai_models
import data.governance

# The decision the loop and the gate read: the deny messages, warnings, and
# every violation with the rule that found it and the severity that decides the remediation
# (rollback, review or alert).
decision := {"deny": deny, "warn": warn, "violations": violation, "warnings": warning}

deny contains v.msg if some v in violation

# --- what is deployed ------------------------------------------------------------------------------

app := object.get(input, ["metadata", "labels", "app"], "")

team_label := object.get(input, ["metadata", "labels", "team"], "")

model_version := object.get(input, ["spec", "template", "metadata", "labels", "model-version"], null)

# The deployed version's facts; null when there are none.
facts := object.get(ai_models, model_version, null)

# The reference policy governs the credit-scoring-ai Deployment; any other Deployment opts in with
# the label rai-pipelines.io/governed: "true".
governed if {
	input.kind == "Deployment"
	app == "credit-scoring-ai"
}

governed if {
	input.kind == "Deployment"
	input.metadata.labels["rai-pipelines.io/governed"] == "true"
}

# The team whose thresholds apply: the model registry's, and the Deployment's own team label only
# for a model the registry does not declare (a label is written by whoever writes the manifest).
team := data.registry.teams[app]

team := team_label if not data.registry.teams[app]

# --- thresholds and severities ---------------------------------------------------------------------

threshold(name) := value if {
	value := governance.models[app].thresholds[name]
} else := value if {
	value := governance.teams[team].thresholds[name]
} else := governance.thresholds[name]

severity(rule) := value if {
	value := governance.models[app].severity[rule]
} else := value if {
	value := governance.teams[team].severity[rule]
} else := governance.severity[rule]

finding(rule, msg) := {"rule": rule, "msg": msg, "severity": severity(rule)}

# --- violations ------------------------------------------------------------------------------------

# When the facts carry the upper end of the score's bootstrap interval, the violation needs that
# end below the threshold too: a small group's noise alone does not roll a model back (it warns).
violation contains finding("fairness", msg) if {
	is_number(facts.fairness_score)
	facts.fairness_score >= 0 # a negative ratio is no measurement (an alert, below), never a rollback
	governed
	limit := threshold("fairness_score_min")
	facts.fairness_score < limit
	fairness_upper < limit
	msg := sprintf("AI model fairness score below acceptable threshold (%v).", [limit])
}

fairness_upper := facts.fairness_score_ci_upper if {
	is_number(facts.fairness_score_ci_upper)
} else := facts.fairness_score

violation contains finding("cost", msg) if {
	is_number(facts.estimated_cost_per_inference_usd)
	governed
	limit := threshold("estimated_cost_per_inference_usd_max")
	facts.estimated_cost_per_inference_usd > limit
	msg := sprintf("Estimated inference cost exceeds budget (%v USD).", [limit])
}

# Missing or unusable facts never read as compliance.
violation contains finding("facts_missing", msg) if {
	governed
	is_string(model_version)
	facts == null
	msg := sprintf("No governance facts for model version %s: compliance cannot be shown.", [model_version])
}

violation contains finding("facts_missing", msg) if {
	governed
	facts != null
	not complete
	msg := sprintf(
		"Governance facts for model version %s are incomplete or mistyped: compliance cannot be shown.",
		[model_version],
	)
}

violation contains finding("facts_missing", msg) if {
	governed
	not is_string(model_version)
	msg := "Governed Deployment has no model-version label on its pod template: compliance cannot be shown."
}

# Facts are per model: a model whose day failed keeps its last facts while the others move on.
# facts_age_days is how many days the model's newest facts are behind the newest facts of any model.
violation contains finding("facts_stale", msg) if {
	governed
	is_number(facts.facts_age_days)
	limit := threshold("facts_age_days_max")
	facts.facts_age_days > limit
	msg := sprintf(
		"Governance facts are %v days behind the newest (limit %v): compliance is not current.",
		[facts.facts_age_days, limit],
	)
}

# A model with protected attributes must have a fairness score; its absence is not a pass.
violation contains finding("facts_missing", msg) if {
	governed
	facts.fairness_applicable == true
	not is_number(object.get(facts, "fairness_score", null))
	msg := "Fairness score missing for a model with protected attributes: compliance cannot be shown."
}

# Complete facts: a cost that is a number and not below zero; a fairness ratio in [0, 1], which may
# be missing only when the facts say whether fairness applies (`fairness_applicable`, a boolean).
# Facts are read with object.get and a default: an argument that is undefined would make the whole
# rule undefined, not its negation true.
complete if {
	is_object(facts)
	cost := object.get(facts, "estimated_cost_per_inference_usd", null)
	is_number(cost)
	cost >= 0
	applicable := object.get(facts, "fairness_applicable", null)
	applicable_ok(applicable)
	fairness_ok(applicable, object.get(facts, "fairness_score", null))
}

applicable_ok(null)

applicable_ok(applicable) if is_boolean(applicable)

fairness_ok(_, score) if {
	is_number(score)
	score >= 0
	score <= 1
}

fairness_ok(applicable, score) if {
	not is_number(score)
	applicable != null
}

# --- warnings --------------------------------------------------------------------------------------
# Each warning names the rule that raised it (as a violation does), for reports such as SARIF.

warn contains w.msg if some w in warning

warning contains {"rule": "drift", "msg": msg} if {
	is_number(facts.drift_share)
	governed
	limit := threshold("drift_share_warn")
	facts.drift_share > limit
	# The names are joined around sprintf, not passed to it: regopy 1.5.2 emits invalid JSON for the
	# result of concat formatted by sprintf (docs/policies.md, known edges of regopy).
	msg := concat("", [
		sprintf("Input drift on %v of the features (", [round(facts.drift_share * 100) / 100]),
		drifted_names,
		sprintf("), above %v.", [limit]),
	])
}

drifted_names := concat(", ", facts.drifted_features) if {
	is_array(facts.drifted_features)
	every name in facts.drifted_features {
		is_string(name)
	}
} else := "not named"

warning contains {"rule": "fairness", "msg": msg} if {
	is_number(facts.fairness_score_ci_upper)
	is_number(facts.fairness_score)
	governed
	limit := threshold("fairness_score_min")
	facts.fairness_score < limit
	facts.fairness_score_ci_upper >= limit
	msg := sprintf(
		"Fairness score %v is below %v but its 95%% interval reaches %v: not enough evidence to act; watch it.",
		[round(facts.fairness_score * 1000) / 1000, limit, round(facts.fairness_score_ci_upper * 1000) / 1000],
	)
}

# The explanations' global ranking moved (nDCG of the attributions against the reference's; SageMaker
# Clarify alarms below 0.9): the model now decides on other grounds than those it was validated on.
warning contains {"rule": "explanations", "msg": msg} if {
	governed
	is_number(facts.attribution_ndcg)
	limit := threshold("attribution_ndcg_warn")
	facts.attribution_ndcg < limit
	msg := sprintf(
		"Feature attributions reordered: nDCG %v against the reference, below %v.",
		[round(facts.attribution_ndcg * 1000) / 1000, limit],
	)
}

warning contains {"rule": "facts_stale", "msg": msg} if {
	governed
	is_number(facts.facts_age_days)
	limit := threshold("facts_age_days_warn")
	facts.facts_age_days > limit
	facts.facts_age_days <= threshold("facts_age_days_max")
	msg := sprintf("Governance facts are %v days behind the newest (warn above %v).", [facts.facts_age_days, limit])
}

warning contains {"rule": "registry", "msg": msg} if {
	registered := data.registry.teams[app]
	governed
	team_label != ""
	team_label != registered
	msg := sprintf(
		"Team label %s differs from the model registry's team %s for %s: the registry's thresholds apply.",
		[team_label, registered, app],
	)
}
