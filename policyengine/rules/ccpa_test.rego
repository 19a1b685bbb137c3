package tests.ccpa

import data.tests.support as t

test_between_own_clusters_is_not_a_disclosure if {
	d := data.policyengine.decision with input as t.route("shop/billing", "us-ca-1", t.none, "us-1", t.ccpa)
	d.allowed
}

test_own_cluster_abroad_is_fine_for_ccpa if {
	# CCPA has no localisation: the business's own cluster anywhere is not a disclosure.
	d := data.policyengine.decision with input as t.route("shop/billing", "us-ca-1", t.none, "eu-1", t.ccpa)
	d.allowed
}

test_service_provider_with_contract_allowed if {
	d := data.policyengine.decision with input as t.route("shop/billing", "us-ca-1", t.none, "partner-1", t.ccpa)
	d.allowed
}

test_service_provider_contract_expired if {
	d := data.policyengine.decision with input as t.at("shop/billing", "us-ca-1", t.none, "partner-1", t.ccpa, "2027-07-01T00:00:00Z")
	t.rules(d) == {"ccpa-recipient-contract"}
	some v in d.violations
	v.article == "Cal. Civ. Code 1798.100(d)"
}

test_recipient_without_role_denied if {
	d := data.policyengine.decision with input as t.route("shop/billing", "us-ca-1", t.none, "partner-1", t.ccpa)
		with data.policyengine.policy.index.regimes.CCPA["partner-1"] as t.facts_abroad
		with data.policyengine.policy.index.transfers as {}
	t.rules(d) == {"ccpa-recipient-contract"}
}

test_third_party_with_contract_allowed_without_opt_out if {
	d := data.policyengine.decision with input as t.route("shop/billing", "us-ca-1", t.none, "ads-1", t.ccpa)
	d.allowed
}

test_third_party_refused_after_opt_out if {
	d := data.policyengine.decision with input as t.opted_out(t.route("shop/billing", "us-ca-1", t.none, "ads-1", t.ccpa))
	t.rules(d) == {"ccpa-opt-out"}
	some v in d.violations
	v.article == "Cal. Civ. Code 1798.120, 1798.135"
}

test_service_provider_unaffected_by_opt_out if {
	d := data.policyengine.decision with input as t.opted_out(t.route("shop/billing", "us-ca-1", t.none, "partner-1", t.ccpa))
	d.allowed
}

test_opt_out_removes_third_party_from_permitted if {
	d := data.policyengine.decision with input as t.opted_out(t.route("shop/billing", "us-ca-1", t.none, "ads-1", t.ccpa))
	not "ads-1" in d.permitted_clusters
	"partner-1" in d.permitted_clusters
}

test_unregulated_data_may_go_to_third_party if {
	d := data.policyengine.decision with input as t.opted_out(t.route("shop/catalog", "us-ca-1", t.none, "ads-1", t.none))
	d.allowed
}
