# China: PIPL Art. 38-40, CSL Art. 37, DSL Art. 31 and the CAC 2024 Provisions on cross-border data
# flows (Order No. 16). Personal information of mainland subjects leaving the mainland (Hong Kong and
# Macau are outside it) needs a mechanism that fits the service's declared yearly volume:
#   exempt      non-sensitive PI of fewer than 100,000 people, not CIIO, no important data;
#   contract    up to 1,000,000 non-sensitive or fewer than 10,000 sensitive: standard contract,
#               certification (or an assessment); a service that declares no volume gets no exemption;
#   assessment  more than that, any important data, or a CIIO service: a passed CAC security assessment.
# Important data of mainland origin needs the assessment whether or not it is personal (DSL Art. 31,
# CAC Order No. 16 Art. 7), and so does what a CIIO collects in the mainland (CSL Art. 37): Python
# classifies such data as PIPL by its `origin` (regimes.yaml origin_classes, ciio_origin_classes), and
# the messages then speak of data of mainland origin instead of mainland subjects.
package policyengine.pipl

regime := data.policyengine.policy.regimes.PIPL

thresholds := object.union(
	{"exempt_below": 100000, "contract_below": 1000000, "sensitive_assessment_from": 10000},
	object.get(regime, "thresholds", {}),
)

# The PIPL data the route moves, merged over both ends: the largest declared volumes, any CIIO flag.
pipl_ends := [e | some e in [data.policyengine.lib.route.source, data.policyengine.lib.route.destination]; "PIPL" in object.get(e, "regimes", [])]

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

home := data.policyengine.lib.members("PIPL", "home")

permitted := data.policyengine.lib.all_clusters if tier == "exempt"

else := home | data.policyengine.lib.covered(accepted[tier])

reasons := concat("; ", sort(assessment_reasons)) if tier == "assessment"

else := concat("; ", sort(contract_reasons))

needs := "a passed, unexpired CAC security assessment" if tier == "assessment"

else := "a filed PIPL standard contract, a PIPL certification or a CAC security assessment"

# Whether the data is PIPL's for its subjects (personal information of mainland subjects), or only for
# where it was collected or generated.
by_subjects if {
	some e in pipl_ends
	some s in object.get(e, "subjects", [])
	s in regime.subjects
}

tier_article := data.policyengine.lib.article("PIPL", "assessment", "PIPL Art. 40; CSL Art. 37; DSL Art. 31; CAC Order No. 16 Art. 7") if {
	tier == "assessment"
	by_subjects
} else := data.policyengine.lib.article("PIPL", "important", "DSL Art. 31; CSL Art. 37; CAC Order No. 16 Art. 7") if {
	tier == "assessment"
} else := data.policyengine.lib.article("PIPL", "transfer", "PIPL Art. 38-39")

held := "personal information of mainland China subjects" if by_subjects

else := "important data of mainland origin" if "important" in classes

else := "data a critical information infrastructure operator collected in the mainland"

moves := sprintf("PIPL: %s holds %s; the route %s -> %s provides it outside the mainland", [data.policyengine.lib.service, held, data.policyengine.lib.source_text, data.policyengine.lib.destination_text])

refused := {c | some c in data.policyengine.lib.known_ends; not c in permitted}

expired := data.policyengine.lib.expired_of(accepted[tier])

problems[c] := v if {
	some c in refused
	t := expired[c]
	v := {
		"rule": "pipl-mechanism-expired",
		"article": tier_article,
		"message": sprintf("%s (%s), and the %s %q recorded for it expired on %s", [moves, data.policyengine.lib.policy.clusters[c].jurisdiction, t.type, t.id, t.expires]),
		"remedy": sprintf("renew %s %q in policies/transfers.yaml; or %s", [t.type, t.id, data.policyengine.keep_text("clusters in mainland China (none is declared)")]),
	}
}

problems[c] := v if {
	some c in refused
	not expired[c]
	v := {
		"rule": sprintf("pipl-%s-required", [tier]),
		"article": tier_article,
		"message": sprintf("%s (%s), which needs %s because %s; none is recorded", [moves, data.policyengine.lib.policy.clusters[c].jurisdiction, needs, reasons]),
		"remedy": sprintf("%s; or record %s for %s to %s in policies/transfers.yaml", [data.policyengine.keep_text("clusters in mainland China (none is declared)"), needs, data.policyengine.lib.service, c]),
	}
}
