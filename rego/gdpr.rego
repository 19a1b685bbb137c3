# GDPR Chapter V (Art. 44-46, 49): personal data of EEA subjects may go to EEA clusters, to adequacy
# destinations whose condition the entity running the cluster meets (US: DPF-certified; Canada: a
# commercial organisation), or elsewhere under an unexpired recorded mechanism (SCC, BCR, ...) for that
# service and destination. A cluster abroad counts even when the business runs it.
package policyengine.gdpr

import data.policyengine.lib

regime := data.policyengine.policy.regimes.GDPR

permitted(c) if lib.located_in(c, regime.home)

permitted(c) if adequate(c)

permitted(c) if lib.valid_mechanism(regime.mechanisms, c)

adequate(c) if {
	some j in lib.cluster(c).in
	a := regime.adequacy[j]
	lib.valid(a.expires)
	condition_met(a.condition, lib.entity(c))
}

condition_met(null, _) := true

condition_met("dpf_certified", e) if e.dpf_certified == true

condition_met("ca_commercial", e) if e.ca_commercial == true

# An adequacy decision exists for the place but its condition is not met by the operator.
unmet_condition(c) := a.condition if {
	some j in lib.cluster(c).in
	a := regime.adequacy[j]
	lib.valid(a.expires)
	not condition_met(a.condition, lib.entity(c))
}

condition_text("dpf_certified") := "covers only recipients certified under the EU-US Data Privacy Framework"

condition_text("ca_commercial") := "covers only commercial organisations subject to PIPEDA"

problem(c) := v if {
	lib.known(c)
	not permitted(c)
	t := lib.expired_mechanism(regime.mechanisms, c)
	v := {
		"rule": "gdpr-mechanism-expired",
		"article": lib.article("GDPR", "mechanism", "GDPR Art. 46-47, 49"),
		"message": sprintf(
			"GDPR: %s holds personal data of EEA subjects; the route %s -> %s moves it to %s, and the %s %q recorded for it expired on %s",
			[lib.service, lib.describe(lib.route.source.cluster), lib.describe(lib.route.destination.cluster), lib.cluster(c).jurisdiction, t.type, t.id, t.expires],
		),
		"remedy": sprintf("renew %s %q in policies/transfers.yaml, or keep the route to %s", [t.type, t.id, permitted_text]),
	}
}

problem(c) := v if {
	lib.known(c)
	not permitted(c)
	not lib.expired_mechanism(regime.mechanisms, c)
	cond := unmet_condition(c)
	v := {
		"rule": "gdpr-adequacy-condition",
		"article": lib.article("GDPR", "adequacy", "GDPR Art. 45"),
		"message": sprintf(
			"GDPR: %s holds personal data of EEA subjects; the route %s -> %s moves it to %s, whose adequacy decision %s, and %s (which runs %s) is not",
			[lib.service, lib.describe(lib.route.source.cluster), lib.describe(lib.route.destination.cluster), lib.cluster(c).jurisdiction, condition_text(cond), lib.cluster(c).entity, c],
		),
		"remedy": sprintf("keep the route to %s, or record an SCC for %s to %s in policies/transfers.yaml", [permitted_text, lib.service, c]),
	}
}

problem(c) := v if {
	lib.known(c)
	not permitted(c)
	not lib.expired_mechanism(regime.mechanisms, c)
	not unmet_condition(c)
	v := {
		"rule": "gdpr-transfer",
		"article": lib.article("GDPR", "transfer", "GDPR Art. 44-46"),
		"message": sprintf(
			"GDPR: %s holds personal data of EEA subjects; the route %s -> %s moves it to %s, outside the EEA, with no adequacy decision and no transfer mechanism recorded",
			[lib.service, lib.describe(lib.route.source.cluster), lib.describe(lib.route.destination.cluster), lib.cluster(c).jurisdiction],
		),
		"remedy": sprintf("keep the route to %s, or record an SCC or BCR for %s to %s in policies/transfers.yaml", [permitted_text, lib.service, c]),
	}
}

permitted_text := lib.join_clusters(data.policyengine.permitted_clusters) if {
	count(data.policyengine.permitted_clusters) > 0
} else := "clusters in the EEA (none is declared)"
