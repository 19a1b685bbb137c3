# GDPR Chapter V (Art. 44-46, 49): personal data of EEA subjects may go to EEA clusters, to adequacy
# destinations whose condition the entity running the cluster meets (US: DPF-certified; Canada: a
# commercial organisation), or elsewhere under an unexpired recorded mechanism (SCC, BCR, ...) for that
# service and destination. A cluster abroad counts even when the business runs it.
package policyengine.gdpr

regime := data.policyengine.lib.policy.regimes.GDPR

facts := data.policyengine.lib.index.regimes.GDPR

# The static facts in the index: `home` (in the EEA), `adequate_until` (the adequacy decision's expiry
# when its condition is met by the cluster's entity, "" otherwise), `unmet_condition`; the first two
# also as sets (`index.sets`: the home clusters, the adequate ones by expiry).
permitted := data.policyengine.lib.members("GDPR", "home") | data.policyengine.lib.valid_today(data.policyengine.lib.sets("GDPR").adequate) | data.policyengine.lib.covered(regime.mechanisms)

condition_text := {
	"dpf_certified": "covers only recipients certified under the EU-US Data Privacy Framework",
	"ca_commercial": "covers only commercial organisations subject to PIPEDA",
}

moves := sprintf("GDPR: %s holds personal data of EEA subjects; the route %s -> %s moves it to", [data.policyengine.lib.service, data.policyengine.lib.source_text, data.policyengine.lib.destination_text])

# Why each end of the route that GDPR does not permit is refused (one entry per such cluster).
refused := {c | some c in data.policyengine.lib.known_ends; not c in permitted}

expired := data.policyengine.lib.expired_of(regime.mechanisms)

problems[c] := v if {
	some c in refused
	t := expired[c]
	v := {
		"rule": "gdpr-mechanism-expired",
		"article": data.policyengine.lib.article("GDPR", "mechanism", "GDPR Art. 46-47, 49"),
		"message": sprintf("%s %s, and the %s %q recorded for it expired on %s", [moves, data.policyengine.lib.policy.clusters[c].jurisdiction, t.type, t.id, t.expires]),
		"remedy": sprintf("renew %s %q in policies/transfers.yaml; or %s", [t.type, t.id, keep]),
	}
}

problems[c] := v if {
	some c in refused
	not expired[c]
	cond := facts[c].unmet_condition
	cond != null
	v := {
		"rule": "gdpr-adequacy-condition",
		"article": data.policyengine.lib.article("GDPR", "adequacy", "GDPR Art. 44-45"),
		"message": sprintf("%s %s, whose adequacy decision %s, and %s (which runs %s) is not", [moves, data.policyengine.lib.policy.clusters[c].jurisdiction, object.get(condition_text, cond, cond), data.policyengine.lib.policy.clusters[c].entity, c]),
		"remedy": sprintf("%s; or record an SCC for %s to %s in policies/transfers.yaml", [keep, data.policyengine.lib.service, c]),
	}
}

problems[c] := v if {
	some c in refused
	not expired[c]
	facts[c].unmet_condition == null
	v := {
		"rule": "gdpr-transfer",
		"article": data.policyengine.lib.article("GDPR", "transfer", "GDPR Art. 44-46"),
		"message": sprintf("%s %s, outside the EEA, with no adequacy decision and no transfer mechanism recorded", [moves, data.policyengine.lib.policy.clusters[c].jurisdiction]),
		"remedy": sprintf("%s; or record an SCC or BCR for %s to %s in policies/transfers.yaml", [keep, data.policyengine.lib.service, c]),
	}
}

keep := data.policyengine.keep_text("clusters in the EEA (none is declared)")
