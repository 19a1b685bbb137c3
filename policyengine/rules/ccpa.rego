# CCPA / CPRA (Cal. Civ. Code 1798.100(d), 1798.120, 1798.135): no localisation. Moving data between
# clusters the business runs is not a disclosure; personal information of California consumers may go
# to another entity only when its role (service provider, contractor, third party) and its contract are
# recorded; a third party receives a sale/share, refused when the request carries an opt-out (Sec-GPC: 1).
package policyengine.ccpa

regime := data.policyengine.lib.policy.regimes.CCPA

# Static facts per cluster: `own` (run by the business), `role` and `contract_until` of its entity.
facts := data.policyengine.lib.index.regimes.CCPA

roles := {"service_provider", "contractor", "third_party"}

opted_out if input.opt_out == true

own := {c | some c, f in facts; f.own}

# A contract on record: the entity's own (unexpired) or a transfer for this service and destination.
contracted := {c | some c, f in facts; f.contract_until >= data.policyengine.lib.today} | data.policyengine.lib.covered(regime.mechanisms)

sold_after_opt_out := {c | opted_out; some c, f in facts; f.role == "third_party"}

recipients := {c | some c, f in facts; f.role in roles}

permitted := own | ((recipients & contracted) - sold_after_opt_out)

discloses := sprintf("CCPA: %s holds personal information of California consumers; the route %s -> %s discloses it to", [data.policyengine.lib.service, data.policyengine.lib.source_text, data.policyengine.lib.destination_text])

refused := {c | some c in data.policyengine.lib.known_ends; not c in permitted}

problems[c] := v if {
	some c in refused
	c in sold_after_opt_out
	v := {
		"rule": "ccpa-opt-out",
		"article": data.policyengine.lib.article("CCPA", "opt_out", "Cal. Civ. Code 1798.120, 1798.135"),
		"message": sprintf("%s %s, a third party (a sale or share), and the request carries an opt-out (Sec-GPC: 1)", [discloses, data.policyengine.lib.policy.clusters[c].entity]),
		"remedy": sprintf("honour the opt-out: route to %s", [permitted_text]),
	}
}

problems[c] := v if {
	some c in refused
	not c in sold_after_opt_out
	v := {
		"rule": "ccpa-recipient-contract",
		"article": data.policyengine.lib.article("CCPA", "contract", "Cal. Civ. Code 1798.100(d)"),
		"message": sprintf("%s %s, whose CCPA role and contract are not recorded (or the contract expired)", [discloses, data.policyengine.lib.policy.clusters[c].entity]),
		"remedy": sprintf("record the role and contract of %s in policies/entities.yaml or policies/transfers.yaml, or route to %s", [data.policyengine.lib.policy.clusters[c].entity, permitted_text]),
	}
}

permitted_text := data.policyengine.lib.join_clusters(data.policyengine.permitted_clusters) if {
	count(data.policyengine.permitted_clusters) > 0
} else := "the business's own clusters (none is declared)"
