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
	# shop/ledger has no transfer on record (OPA merges a `with` over data objects, so the test uses a
	# service without records instead of blanking the transfers).
	d := data.policyengine.decision with input as t.route("shop/ledger", "us-ca-1", t.none, "vendor-1", t.ccpa)
		with data.policyengine.policy.index.regimes.CCPA["vendor-1"] as t.facts_abroad
		with data.policyengine.policy.clusters["vendor-1"] as t.vendor_cluster
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

test_recorded_transfer_is_the_role_of_an_entity_without_one if {
	# vendor-1's entity has no CCPA role; a ccpa_service_provider transfer for this service records one.
	d := data.policyengine.decision with input as t.route("shop/billing", "us-ca-1", t.none, "vendor-1", t.ccpa)
		with data.policyengine.policy.index.regimes.CCPA["vendor-1"] as t.facts_abroad
		with data.policyengine.policy.clusters["vendor-1"] as t.vendor_cluster
		with data.policyengine.policy.index.transfers as {"shop/billing": [t.transfer("sp-1", "ccpa_service_provider", "2027-06-30", ["vendor-1"])]}
	d.allowed
}

test_recorded_transfer_counts_only_for_its_service if {
	d := data.policyengine.decision with input as t.route("shop/ledger", "us-ca-1", t.none, "vendor-1", t.ccpa)
		with data.policyengine.policy.index.regimes.CCPA["vendor-1"] as t.facts_abroad
		with data.policyengine.policy.clusters["vendor-1"] as t.vendor_cluster
		with data.policyengine.policy.index.transfers as {"shop/billing": [t.transfer("sp-1", "ccpa_service_provider", "2027-06-30", ["vendor-1"])]}
	t.rules(d) == {"ccpa-recipient-contract"}
}

test_recorded_contractor_role_overrides_the_entity_third_party_role if {
	# adnet is a third party (entities.yaml), but a contractor for shop/orders (ccpa-contractor-orders-adnet):
	# handing it orders data is no sale, so an opt-out does not refuse it.
	d := data.policyengine.decision with input as t.opted_out(t.route("shop/orders", "us-ca-1", t.none, "ads-1", t.ccpa))
	d.allowed
}

test_recorded_third_party_role_is_refused_after_opt_out if {
	d := data.policyengine.decision with input as t.opted_out(t.route("shop/ledger", "us-ca-1", t.none, "partner-1", t.ccpa))
		with data.policyengine.policy.index.transfers as {"shop/ledger": [t.transfer("tp-1", "ccpa_third_party", "2027-06-30", ["partner-1"])]}
	t.rules(d) == {"ccpa-opt-out"}
}

test_expired_recorded_transfer_is_no_role if {
	d := data.policyengine.decision with input as t.route("shop/billing", "us-ca-1", t.none, "vendor-1", t.ccpa)
		with data.policyengine.policy.index.regimes.CCPA["vendor-1"] as t.facts_abroad
		with data.policyengine.policy.clusters["vendor-1"] as t.vendor_cluster
		with data.policyengine.policy.index.transfers as {"shop/billing": [t.transfer("sp-1", "ccpa_service_provider", "2026-01-31", ["vendor-1"])]}
	t.rules(d) == {"ccpa-recipient-contract"}
}
