package tests.decision

import data.tests.support as t

test_unregulated_route_allowed_everywhere if {
	d := data.policyengine.decision with input as t.route("shop/catalog", "eu-1", t.none, "cn-1", t.none)
	d.allowed
	count(d.permitted_clusters) == count(data.policyengine.policy.clusters)
}

test_unknown_destination_never_permitted if {
	d := data.policyengine.decision with input as t.route("shop/catalog", "eu-1", t.none, "mars-1", t.none)
	not d.allowed
	t.rules(d) == {"unknown-cluster"}
	not "mars-1" in d.permitted_clusters
}

test_unknown_source_never_permitted if {
	d := data.policyengine.decision with input as t.route("shop/checkout", "mars-1", t.none, "eu-1", t.gdpr)
	not d.allowed
	t.blamed(d) == {"mars-1"}
}

test_unknown_cluster_with_regulated_data_names_regime if {
	d := data.policyengine.decision with input as t.route("shop/checkout", "eu-1", t.none, "mars-1", t.gdpr)
	t.regimes_hit(d) == {"GDPR"}
}

test_two_regimes_both_must_permit if {
	both := object.union(t.gdpr, {"regimes": ["CCPA", "GDPR"], "subjects": ["EEA", "US-CA"]})
	d := data.policyengine.decision with input as t.route("analytics/events", "eu-1", t.none, "ads-1", both)
	t.regimes_hit(d) == {"GDPR"}
	d.regimes == ["CCPA", "GDPR"]
}

test_enforcement_rewrite_for_gdpr_in_shop if {
	d := data.policyengine.decision with input as t.route("shop/checkout", "eu-1", t.none, "cn-1", t.gdpr)
	d.enforcement == "rewrite"
}

test_enforcement_default_deny_elsewhere if {
	d := data.policyengine.decision with input as t.route("payments/ledger", "eu-1", t.none, "cn-1", t.gdpr)
	d.enforcement == "deny"
}

test_enforcement_dryrun_in_sandbox if {
	d := data.policyengine.decision with input as t.route("sandbox/try", "eu-1", t.none, "cn-1", t.gdpr)
	d.enforcement == "dryrun"
}

test_enforcement_warn_for_ccpa_in_analytics if {
	d := data.policyengine.decision with input as t.route("analytics/events", "us-ca-1", t.none, "vendor-1", t.ccpa)
		with data.policyengine.policy.index.transfers as {}
		with data.policyengine.policy.index.regimes.CCPA["vendor-1"] as t.facts_abroad
		with data.policyengine.policy.clusters["vendor-1"] as t.vendor_cluster
	d.enforcement == "warn"
}

test_strongest_enforcement_wins if {
	both := object.union(t.gdpr, {"regimes": ["CCPA", "GDPR"], "subjects": ["EEA", "US-CA"]})
	d := data.policyengine.decision with input as t.route("analytics/events", "eu-1", t.none, "cn-1", both)
		with data.policyengine.policy.enforcement.rules as [{"regime": "CCPA", "namespaces": ["analytics"], "action": "warn"}]
	d.enforcement == "deny"
}

test_violation_carries_enforcement if {
	d := data.policyengine.decision with input as t.route("sandbox/try", "eu-1", t.none, "cn-1", t.gdpr)
	every v in d.violations {
		v.enforcement == "dryrun"
	}
}

test_decision_shape if {
	d := data.policyengine.decision with input as t.route("shop/catalog", "eu-1", t.none, "eu-2", t.none)
	object.keys(d) == {"allowed", "violations", "permitted_clusters", "enforcement", "regimes"}
}

test_no_cluster_satisfying_every_regime_is_said_so if {
	# Personal data of EEA and mainland subjects, from the mainland to Hong Kong: GDPR permits the EEA
	# (and adequacy destinations), PIPL the mainland: no declared cluster satisfies both.
	both := {"regimes": ["GDPR", "PIPL"], "data_classes": ["personal"], "subjects": ["CN", "EEA"], "pipl": {"volume": 250000, "sensitive_volume": 0, "ciio": false}}
	d := data.policyengine.decision with input as t.route("shop/loyalty", "cn-1", t.none, "hk-1", both)
	d.permitted_clusters == []
	t.regimes_hit(d) == {"GDPR", "PIPL"}
	every v in d.violations {
		contains(v.remedy, "no declared cluster satisfies GDPR and PIPL at once")
		not contains(v.remedy, "none is declared")
	}
	some v in d.violations
	contains(v.remedy, "GDPR permits eu-1, eu-2, partner-1; PIPL permits cn-1")
}

test_one_regime_keeps_its_own_remedy if {
	d := data.policyengine.decision with input as t.route("shop/checkout", "eu-1", t.none, "cn-1", t.gdpr)
	some v in d.violations
	startswith(v.remedy, "keep the route to eu-1, eu-2, partner-1; or record")
}
