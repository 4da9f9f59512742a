# FinOps rules of the governance decision, Rego v1: what a model version costs per inference as
# allocated from the bill, how fast its model burns its monthly budget, and the cost anomalies open
# on it. They join the same decision as the responsible-AI rules (same package), so the same sensor
# evaluates them and the same gate runs them before a model ships; each rule's severity in the data
# decides whether it rolls back, asks for review or alerts, and each has a warning level below it.
#
# The facts (data.ai_models[version]) come from the pipeline's model_costs, cost_forecast and
# cost_anomalies assets:
#   cost_per_inference_7d_usd   allocated cost of the last 7 days / inferences of those days
#   budget_burn_rate            spend to date / (budget x elapsed share of the month); 1 is on track
#   budget_projected_overrun_date, budget_days_until_exhausted, budget_monthly_usd
#   cost_anomaly_open_count, cost_anomaly_impact_usd (largest open event), cost_anomaly_root_cause
# A field that is absent means the pipeline has no such figure (no budget declared, no counts):
# nothing to judge. A field that is present but not a number is never read as compliance.
package apexlogic.ai_governance

finops_numbers := [
	"cost_per_inference_7d_usd",
	"budget_burn_rate",
	"budget_days_until_exhausted",
	"budget_monthly_usd",
	"cost_anomaly_open_count",
	"cost_anomaly_impact_usd",
]

# --- cost per inference, as allocated -------------------------------------------------------------

violation contains finding("cost_per_inference", msg) if {
	governed
	is_number(facts.cost_per_inference_7d_usd)
	limit := threshold("cost_per_inference_usd_max")
	facts.cost_per_inference_7d_usd > limit
	msg := sprintf(
		"Allocated cost per inference over 7 days is %v USD, above the limit of %v USD.",
		[round_to(facts.cost_per_inference_7d_usd, 1000000), limit],
	)
}

warning contains {"rule": "cost_per_inference", "msg": msg} if {
	governed
	is_number(facts.cost_per_inference_7d_usd)
	limit := threshold("cost_per_inference_usd_warn")
	facts.cost_per_inference_7d_usd > limit
	facts.cost_per_inference_7d_usd <= threshold("cost_per_inference_usd_max")
	msg := sprintf(
		"Allocated cost per inference over 7 days is %v USD, above the warning level of %v USD.",
		[round_to(facts.cost_per_inference_7d_usd, 1000000), limit],
	)
}

# --- budget burn ------------------------------------------------------------------------------------

violation contains finding("budget", msg) if {
	governed
	is_number(facts.budget_burn_rate)
	limit := threshold("budget_burn_rate_max")
	facts.budget_burn_rate > limit
	msg := sprintf("Budget burning at %v times the planned rate (limit %v)%v.", [
		round_to(facts.budget_burn_rate, 100), limit, overrun_detail,
	])
}

warning contains {"rule": "budget", "msg": msg} if {
	governed
	is_number(facts.budget_burn_rate)
	limit := threshold("budget_burn_rate_warn")
	facts.budget_burn_rate > limit
	facts.budget_burn_rate <= threshold("budget_burn_rate_max")
	msg := sprintf("Budget burning at %v times the planned rate (warn above %v)%v.", [
		round_to(facts.budget_burn_rate, 100), limit, overrun_detail,
	])
}

overrun_detail := sprintf("; projected to overrun on %v, %v days of budget left", [
	facts.budget_projected_overrun_date, round_to(facts.budget_days_until_exhausted, 10),
]) if {
	is_string(facts.budget_projected_overrun_date)
	is_number(facts.budget_days_until_exhausted)
} else := ""

# --- cost anomalies ---------------------------------------------------------------------------------

violation contains finding("cost_anomaly", msg) if {
	governed
	open_anomalies > 0
	limit := threshold("cost_anomaly_impact_usd_max")
	facts.cost_anomaly_impact_usd > limit
	msg := sprintf("Open cost anomaly with an impact of %v USD (limit %v USD); root cause: %v.", [
		round_to(facts.cost_anomaly_impact_usd, 100), limit, anomaly_cause,
	])
}

warning contains {"rule": "cost_anomaly", "msg": msg} if {
	governed
	open_anomalies > 0
	is_number(facts.cost_anomaly_impact_usd)
	facts.cost_anomaly_impact_usd <= threshold("cost_anomaly_impact_usd_max")
	msg := sprintf("%v open cost anomaly(ies), largest impact %v USD; root cause: %v.", [
		open_anomalies, round_to(facts.cost_anomaly_impact_usd, 100), anomaly_cause,
	])
}

open_anomalies := facts.cost_anomaly_open_count if is_number(facts.cost_anomaly_open_count)

anomaly_cause := facts.cost_anomaly_root_cause if {
	is_string(facts.cost_anomaly_root_cause)
} else := "not named"

# --- mistyped FinOps facts fail closed ----------------------------------------------------------------

violation contains finding("facts_missing", msg) if {
	governed
	is_object(facts)
	some name in finops_numbers
	value := object.get(facts, name, null)
	value != null
	not is_number(value)
	msg := sprintf("Governance fact %v is not a number: compliance cannot be shown.", [name])
}

round_to(x, scale) := round(x * scale) / scale
