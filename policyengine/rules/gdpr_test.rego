package tests.gdpr

import data.tests.support as t

test_eu_to_eu_allowed if {
	d := data.policyengine.decision with input as t.route("shop/checkout", "eu-1", t.none, "eu-2", t.gdpr)
	d.allowed
	count(d.violations) == 0
}

test_same_cluster_allowed if {
	d := data.policyengine.decision with input as t.route("shop/checkout", "eu-1", t.none, "eu-1", t.gdpr)
	d.allowed
}

test_us_own_cluster_denied_even_when_business_runs_it if {
	d := data.policyengine.decision with input as t.route("shop/checkout", "eu-1", t.none, "us-1", t.gdpr)
	not d.allowed
	"us-1" in t.blamed(d)
}

test_us_not_dpf_is_adequacy_condition if {
	# acme runs us-1 and is not DPF-certified: the US decision does not cover it (shop/orders has no SCC).
	d := data.policyengine.decision with input as t.route("shop/orders", "eu-1", t.none, "us-1", t.gdpr)
	t.rules(d) == {"gdpr-adequacy-condition"}
	some v in d.violations
	v.article == "GDPR Art. 44-45"
}

test_adequacy_condition_cites_art_44_45_without_a_repo_article if {
	d := data.policyengine.decision with input as t.route("shop/orders", "eu-1", t.none, "us-1", t.gdpr)
		with data.policyengine.policy.regimes.GDPR.articles as {}
	some v in d.violations
	v.article == "GDPR Art. 44-45"
}

test_us_dpf_certified_partner_allowed if {
	d := data.policyengine.decision with input as t.route("shop/checkout", "eu-1", t.none, "partner-1", t.gdpr)
	d.allowed
}

test_us_partner_without_dpf_denied if {
	d := data.policyengine.decision with input as t.route("shop/checkout", "eu-1", t.none, "vendor-1", t.gdpr)
		with data.policyengine.policy.index.regimes.GDPR["vendor-1"] as t.facts_not_adequate("dpf_certified")
		with data.policyengine.policy.clusters["vendor-1"] as t.vendor_cluster
	not d.allowed
	t.rules(d) == {"gdpr-adequacy-condition"}
}

test_expired_scc_reported_as_expired if {
	# scc-checkout-us1 expired on 2026-09-30.
	d := data.policyengine.decision with input as t.route("shop/checkout", "eu-1", t.none, "us-1", t.gdpr)
	t.rules(d) == {"gdpr-mechanism-expired"}
	some v in d.violations
	contains(v.remedy, "scc-checkout-us1")
}

test_scc_valid_before_expiry_allows if {
	d := data.policyengine.decision with input as t.at("shop/checkout", "eu-1", t.none, "us-1", t.gdpr, "2026-09-01T00:00:00Z")
	d.allowed
}

test_scc_for_other_service_does_not_count if {
	d := data.policyengine.decision with input as t.at("shop/orders", "eu-1", t.none, "us-1", t.gdpr, "2026-09-01T00:00:00Z")
	not d.allowed
}

test_wildcard_service_mechanism_counts if {
	d := data.policyengine.decision with input as t.route("shop/orders", "eu-1", t.none, "us-1", t.gdpr)
		with data.policyengine.policy.index.transfers as {"*": [t.transfer("bcr", "bcr", null, ["partner-1", "us-1"])]}
	d.allowed
}

test_mechanism_by_entity_counts if {
	d := data.policyengine.decision with input as t.route("shop/orders", "eu-1", t.none, "us-1", t.gdpr)
		with data.policyengine.policy.index.transfers as {"shop/orders": [t.transfer("scc-acme", "scc", "2030-01-01", ["us-1"])]}
	d.allowed
}

test_non_gdpr_mechanism_type_does_not_count if {
	d := data.policyengine.decision with input as t.route("shop/orders", "eu-1", t.none, "us-1", t.gdpr)
		with data.policyengine.policy.index.transfers as {"*": [t.transfer("x", "pipl_standard_contract", null, ["us-1"])]}
	not d.allowed
}

test_china_denied_as_transfer if {
	d := data.policyengine.decision with input as t.route("shop/checkout", "eu-1", t.none, "cn-1", t.gdpr)
	t.rules(d) == {"gdpr-transfer"}
	some v in d.violations
	v.article == "GDPR Art. 44-46"
	contains(v.message, "eu-1 (aws/eu-central-1, DE)")
	contains(v.message, "cn-1 (aws/cn-north-1, CN)")
}

test_remedy_names_permitted_clusters if {
	d := data.policyengine.decision with input as t.route("shop/checkout", "eu-1", t.none, "cn-1", t.gdpr)
	some v in d.violations
	contains(v.remedy, "eu-1, eu-2, partner-1")
}

test_permitted_clusters_for_gdpr if {
	d := data.policyengine.decision with input as t.route("shop/checkout", "eu-1", t.none, "cn-1", t.gdpr)
	d.permitted_clusters == ["eu-1", "eu-2", "partner-1"]
}

test_caller_data_counts_too if {
	# The caller sends EEA data to an unregulated service abroad: still a transfer.
	d := data.policyengine.decision with input as t.route("shop/catalog", "eu-1", t.gdpr, "cn-1", t.none)
	not d.allowed
	"cn-1" in t.blamed(d)
}

test_data_coming_back_counts if {
	# A caller in the US reads a GDPR service in the EU: the data comes back to the US.
	d := data.policyengine.decision with input as t.route("shop/checkout", "us-1", t.none, "eu-1", t.gdpr)
	not d.allowed
	t.blamed(d) == {"us-1"}
}

test_uk_adequate_until_expiry if {
	d := data.policyengine.decision with input as t.route("shop/checkout", "eu-1", t.none, "uk-1", t.gdpr)
		with data.policyengine.policy.clusters["uk-1"] as {"name": "uk-1", "region": "aws/eu-west-2", "jurisdiction": "GB", "in": ["GB"], "entity": "acme"}
		with data.policyengine.policy.index.regimes.GDPR["uk-1"] as t.facts_adequate("2031-12-27")
		with data.policyengine.policy.index.sets.regimes.GDPR.adequate["2031-12-27"]["uk-1"] as true
	d.allowed
}

test_uk_adequacy_expired_after_2031 if {
	d := data.policyengine.decision with input as t.at("shop/checkout", "eu-1", t.none, "uk-1", t.gdpr, "2032-01-01T00:00:00Z")
		with data.policyengine.policy.clusters["uk-1"] as {"name": "uk-1", "region": "aws/eu-west-2", "jurisdiction": "GB", "in": ["GB"], "entity": "acme"}
		with data.policyengine.policy.index.regimes.GDPR["uk-1"] as t.facts_adequate("2031-12-27")
		with data.policyengine.policy.index.sets.regimes.GDPR.adequate["2031-12-27"]["uk-1"] as true
	not d.allowed
}

test_canada_adequate_for_commercial_org if {
	d := data.policyengine.decision with input as t.route("shop/checkout", "eu-1", t.none, "ca-1", t.gdpr)
		with data.policyengine.policy.clusters["ca-1"] as {"name": "ca-1", "region": "aws/ca-central-1", "jurisdiction": "CA", "in": ["CA"], "entity": "acme"}
		with data.policyengine.policy.index.regimes.GDPR["ca-1"] as t.facts_adequate("9999-12-31")
		with data.policyengine.policy.index.sets.regimes.GDPR.adequate["9999-12-31"]["ca-1"] as true
	d.allowed
}

test_canada_not_adequate_for_non_commercial if {
	d := data.policyengine.decision with input as t.route("shop/checkout", "eu-1", t.none, "ca-1", t.gdpr)
		with data.policyengine.policy.clusters["ca-1"] as {"name": "ca-1", "region": "aws/ca-central-1", "jurisdiction": "CA", "in": ["CA"], "entity": "acme"}
		with data.policyengine.policy.index.regimes.GDPR["ca-1"] as t.facts_not_adequate("ca_commercial")
	t.rules(d) == {"gdpr-adequacy-condition"}
}

test_japan_adequate_without_condition if {
	d := data.policyengine.decision with input as t.route("shop/checkout", "eu-1", t.none, "jp-1", t.gdpr)
		with data.policyengine.policy.clusters["jp-1"] as {"name": "jp-1", "region": "aws/ap-northeast-1", "jurisdiction": "JP", "in": ["JP"], "entity": "acme"}
		with data.policyengine.policy.index.regimes.GDPR["jp-1"] as t.facts_adequate("9999-12-31")
		with data.policyengine.policy.index.sets.regimes.GDPR.adequate["9999-12-31"]["jp-1"] as true
	d.allowed
}

test_california_cluster_is_in_us_for_adequacy if {
	# us-ca-1 is US-CA, inside US: the US adequacy condition applies, acme is not certified.
	d := data.policyengine.decision with input as t.route("shop/orders", "eu-1", t.none, "us-ca-1", t.gdpr)
	t.rules(d) == {"gdpr-adequacy-condition"}
}
