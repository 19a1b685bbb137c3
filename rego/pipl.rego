# China: PIPL Art. 38-40, CSL Art. 37, DSL Art. 31 and the CAC 2024 Provisions on cross-border data
# flows (Order No. 16). Personal information of mainland subjects leaving the mainland (Hong Kong and
# Macau are outside it) needs a mechanism that fits the service's declared yearly volume:
#   exempt      non-sensitive PI of fewer than 100,000 people, not CIIO, no important data;
#   contract    up to 1,000,000 non-sensitive or fewer than 10,000 sensitive: standard contract,
#               certification (or an assessment); a service that declares no volume gets no exemption;
#   assessment  more than that, any important data, or a CIIO service: a passed CAC security assessment.
package policyengine.pipl

import data.policyengine.lib

regime := data.policyengine.policy.regimes.PIPL

thresholds := object.union(
	{"exempt_below": 100000, "contract_below": 1000000, "sensitive_assessment_from": 10000},
	object.get(regime, "thresholds", {}),
)

# The PIPL data the route moves, merged over both ends: the largest declared volumes, any CIIO flag.
pipl_ends := [e | some e in [lib.route.source, lib.route.destination]; "PIPL" in object.get(e, "regimes", [])]

classes := {k | some e in pipl_ends; some k in object.get(e, "data_classes", [])}

declared(field) := [n | some e in pipl_ends; p := object.get(e, "pipl", null); p != null; n := object.get(p, field, null); n != null]

volume := max(declared("volume")) if count(declared("volume")) > 0

sensitive_volume := max(declared("sensitive_volume")) if count(declared("sensitive_volume")) > 0

ciio if {
	some e in pipl_ends
	p := object.get(e, "pipl", null)
	p != null
	object.get(p, "ciio", false) == true
}

assessment_reasons contains "the service is a critical information infrastructure operator (CIIO)" if ciio

assessment_reasons contains "it includes important data" if "important" in classes

assessment_reasons contains sprintf("it declares %d people's personal information a year (1,000,000 or more)", [volume]) if {
	volume >= thresholds.contract_below
}

assessment_reasons contains sprintf("it declares %d people's sensitive personal information a year (10,000 or more)", [sensitive_volume]) if {
	sensitive_volume >= thresholds.sensitive_assessment_from
}

contract_reasons contains "it declares no yearly volume, so no exemption applies" if not volume

contract_reasons contains sprintf("it declares %d people's personal information a year (100,000 or more)", [volume]) if {
	volume >= thresholds.exempt_below
}

contract_reasons contains "it includes sensitive personal information" if "sensitive" in classes

contract_reasons contains "it includes sensitive personal information" if sensitive_volume > 0

tier := "assessment" if count(assessment_reasons) > 0

else := "contract" if count(contract_reasons) > 0

else := "exempt"

accepted := {"assessment": {"cac_assessment"}, "contract": {"pipl_standard_contract", "pipl_certification", "cac_assessment"}}

permitted(c) if lib.located_in(c, regime.home)

permitted(c) if tier == "exempt"

permitted(c) if {
	tier != "exempt"
	lib.valid_mechanism(accepted[tier], c)
}

reasons := concat("; ", sort(assessment_reasons)) if tier == "assessment"

else := concat("; ", sort(contract_reasons))

needs := "a passed, unexpired CAC security assessment" if tier == "assessment"

else := "a filed PIPL standard contract, a PIPL certification or a CAC security assessment"

tier_article := lib.article("PIPL", "assessment", "PIPL Art. 40; CSL Art. 37; DSL Art. 31; CAC Order No. 16 Art. 7") if {
	tier == "assessment"
} else := lib.article("PIPL", "transfer", "PIPL Art. 38-39")

problem(c) := v if {
	lib.known(c)
	not permitted(c)
	t := lib.expired_mechanism(accepted[tier], c)
	v := {
		"rule": "pipl-mechanism-expired",
		"article": tier_article,
		"message": sprintf(
			"PIPL: %s holds personal information of mainland China subjects; the route %s -> %s provides it outside the mainland (%s), and the %s %q recorded for it expired on %s",
			[lib.service, lib.describe(lib.route.source.cluster), lib.describe(lib.route.destination.cluster), lib.cluster(c).jurisdiction, t.type, t.id, t.expires],
		),
		"remedy": sprintf("renew %s %q in policies/transfers.yaml, or keep the route to %s", [t.type, t.id, permitted_text]),
	}
}

problem(c) := v if {
	lib.known(c)
	not permitted(c)
	not lib.expired_mechanism(accepted[tier], c)
	v := {
		"rule": sprintf("pipl-%s-required", [tier]),
		"article": tier_article,
		"message": sprintf(
			"PIPL: %s holds personal information of mainland China subjects; the route %s -> %s provides it outside the mainland (%s), which needs %s because %s; none is recorded",
			[lib.service, lib.describe(lib.route.source.cluster), lib.describe(lib.route.destination.cluster), lib.cluster(c).jurisdiction, needs, reasons],
		),
		"remedy": sprintf("keep the route to %s, or record %s for %s to %s in policies/transfers.yaml", [permitted_text, needs, lib.service, c]),
	}
}

permitted_text := lib.join_clusters(data.policyengine.permitted_clusters) if {
	count(data.policyengine.permitted_clusters) > 0
} else := "clusters in mainland China (none is declared)"
