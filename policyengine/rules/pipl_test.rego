package tests.pipl

import data.tests.support as t

test_mainland_to_mainland_allowed if {
	d := data.policyengine.decision with input as t.route("shop/profile", "cn-1", t.none, "cn-1", t.profile)
	d.allowed
}

test_hong_kong_is_outside_the_mainland if {
	# shop/accounts holds the same data as profile but has no standard contract on record.
	d := data.policyengine.decision with input as t.route("shop/accounts", "cn-1", t.none, "hk-1", t.profile)
	not d.allowed
	t.rules(d) == {"pipl-contract-required"}
}

test_macau_is_outside_the_mainland if {
	d := data.policyengine.decision with input as t.route("shop/profile", "cn-1", t.none, "mo-1", t.profile)
		with data.policyengine.policy.clusters["mo-1"] as {"name": "mo-1", "region": "x/mo", "jurisdiction": "MO", "in": ["MO"], "entity": "acme"}
		with data.policyengine.policy.index.regimes.PIPL["mo-1"] as t.facts_abroad
	not d.allowed
	"mo-1" in t.blamed(d)
}

test_hk_with_standard_contract_allowed if {
	# pipl-sc-profile-hk1 is valid until 2028-06-30.
	d := data.policyengine.decision with input as t.route("shop/profile", "cn-1", t.none, "hk-1", t.profile)
	d.allowed
}

test_standard_contract_expired if {
	d := data.policyengine.decision with input as t.at("shop/profile", "cn-1", t.none, "hk-1", t.profile, "2028-07-01T00:00:00Z")
	t.rules(d) == {"pipl-mechanism-expired"}
}

test_exempt_below_100k_non_sensitive if {
	d := data.policyengine.decision with input as t.route("shop/small", "cn-1", t.none, "eu-1", t.pipl(["personal"], 99999, 0, false))
	d.allowed
}

test_no_exemption_at_100k if {
	d := data.policyengine.decision with input as t.route("shop/small", "cn-1", t.none, "eu-1", t.pipl(["personal"], 100000, 0, false))
	t.rules(d) == {"pipl-contract-required"}
}

test_undeclared_volume_gets_no_exemption if {
	d := data.policyengine.decision with input as t.route("shop/small", "cn-1", t.none, "eu-1", t.pipl(["personal"], null, null, false))
	t.rules(d) == {"pipl-contract-required"}
}

test_sensitive_below_10k_needs_contract if {
	d := data.policyengine.decision with input as t.route("shop/small", "cn-1", t.none, "eu-1", t.pipl(["personal", "sensitive"], 1000, 9999, false))
	t.rules(d) == {"pipl-contract-required"}
}

test_sensitive_10k_needs_assessment if {
	d := data.policyengine.decision with input as t.route("shop/small", "cn-1", t.none, "eu-1", t.pipl(["personal", "sensitive"], 1000, 10000, false))
	t.rules(d) == {"pipl-assessment-required"}
	some v in d.violations
	contains(v.article, "PIPL Art. 40")
}

test_million_needs_assessment if {
	d := data.policyengine.decision with input as t.route("shop/small", "cn-1", t.none, "eu-1", t.pipl(["personal"], 1000000, 0, false))
	t.rules(d) == {"pipl-assessment-required"}
}

test_ciio_needs_assessment_even_when_small if {
	d := data.policyengine.decision with input as t.route("shop/small", "cn-1", t.none, "eu-1", t.pipl(["personal"], 10, 0, true))
	t.rules(d) == {"pipl-assessment-required"}
}

test_important_data_needs_assessment if {
	d := data.policyengine.decision with input as t.route("shop/small", "cn-1", t.none, "eu-1", t.pipl(["important"], 10, 0, false))
	t.rules(d) == {"pipl-assessment-required"}
}

test_contract_does_not_cover_assessment_tier if {
	d := data.policyengine.decision with input as t.route("shop/profile", "cn-1", t.none, "hk-1", t.pipl(["personal"], 2000000, 0, false))
	t.rules(d) == {"pipl-assessment-required"}
}

test_assessment_covers_contract_tier if {
	d := data.policyengine.decision with input as t.route("shop/small", "cn-1", t.none, "eu-1", t.pipl(["personal"], 200000, 0, false))
		with data.policyengine.policy.index.transfers as {"shop/small": [t.transfer("cac-1", "cac_assessment", "2029-03-01", ["eu-1"])]}
	d.allowed
}

test_certification_covers_contract_tier if {
	d := data.policyengine.decision with input as t.route("shop/small", "cn-1", t.none, "eu-1", t.pipl(["personal"], 200000, 0, false))
		with data.policyengine.policy.index.transfers as {"shop/small": [t.transfer("cert-1", "pipl_certification", "2029-03-01", ["eu-1"])]}
	d.allowed
}

test_expired_assessment_denies if {
	d := data.policyengine.decision with input as t.at("shop/small", "cn-1", t.none, "eu-1", t.pipl(["personal"], 2000000, 0, false), "2029-03-02T00:00:00Z")
		with data.policyengine.policy.index.transfers as {"shop/small": [t.transfer("cac-1", "cac_assessment", "2029-03-01", ["eu-1"])]}
	t.rules(d) == {"pipl-mechanism-expired"}
}

test_permitted_clusters_for_profile if {
	d := data.policyengine.decision with input as t.route("shop/profile", "cn-1", t.none, "eu-1", t.profile)
	d.permitted_clusters == ["cn-1", "hk-1"]
}

test_message_names_regions_and_volume if {
	d := data.policyengine.decision with input as t.route("shop/profile", "cn-1", t.none, "eu-1", t.profile)
	some v in d.violations
	contains(v.message, "cn-1 (aws/cn-north-1, CN)")
	contains(v.message, "250000")
}

# Important data of mainland origin about no person (DSL Art. 31, CAC Order No. 16 Art. 7).
important := {"regimes": ["PIPL"], "data_classes": ["important"], "subjects": [], "origin": ["CN"], "pipl": null}

test_important_data_without_personal_subjects_needs_an_assessment if {
	d := data.policyengine.decision with input as t.route("logistics/routes", "cn-1", t.none, "eu-1", important)
	t.rules(d) == {"pipl-assessment-required"}
	some v in d.violations
	v.article == "DSL Art. 31; CSL Art. 37; CAC Order No. 16 Art. 7"
	contains(v.message, "important data of mainland origin")
	not contains(v.message, "subjects")
	contains(v.remedy, "CAC security assessment")
}

test_important_data_under_an_assessment_may_leave if {
	# cac-assessment-logistics-hk1 covers logistics/manifests to hk-1 until 2028-03-31.
	d := data.policyengine.decision with input as t.route("logistics/manifests", "cn-1", t.none, "hk-1", important)
	d.allowed
}

test_important_data_a_standard_contract_does_not_cover if {
	d := data.policyengine.decision with input as t.route("logistics/manifests", "cn-1", t.none, "hk-1", important)
		with data.policyengine.policy.index.transfers as {"logistics/manifests": [t.transfer("sc-1", "pipl_standard_contract", "2028-03-31", ["hk-1"])]}
	t.rules(d) == {"pipl-assessment-required"}
}

test_ciio_held_data_of_mainland_origin_needs_an_assessment if {
	ciio := {"regimes": ["PIPL"], "data_classes": ["personal"], "subjects": [], "origin": ["CN"], "pipl": {"volume": 10, "sensitive_volume": 0, "ciio": true}}
	d := data.policyengine.decision with input as t.route("grid/telemetry", "cn-1", t.none, "hk-1", ciio)
	t.rules(d) == {"pipl-assessment-required"}
	some v in d.violations
	contains(v.message, "critical information infrastructure operator collected in the mainland")
	contains(v.remedy, "CAC security assessment")
}
