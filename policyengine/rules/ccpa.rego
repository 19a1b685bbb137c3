# CCPA / CPRA (Cal. Civ. Code 1798.100(d), 1798.120, 1798.135): no localisation. Moving data between
# clusters the business runs is not a disclosure; personal information of California consumers may go
# to another entity only when its role (service provider, contractor, third party) and its contract are
# recorded; a third party receives a sale/share, refused when the request carries an opt-out (Sec-GPC: 1).
# A transfer recorded for this service and destination (ccpa_service_provider, ccpa_contractor,
# ccpa_third_party in policies/transfers.yaml) is that recipient's role and contract for this service,
# whatever role entities.yaml gives the entity for others (11 CCR 7051, 7053: the contract is per purpose).
package policyengine.ccpa

regime := data.policyengine.lib.policy.regimes.CCPA

# Static facts as sets (`index.sets`): `own` (clusters the business runs), `roles` (by the CCPA role of
# the cluster's entity) and `contract` (by the expiry of the entity's contract).
sets := data.policyengine.lib.sets("CCPA")

roles := {"service_provider", "contractor", "third_party"}

opted_out if input.opt_out == true

own := data.policyengine.lib.members("CCPA", "own")

# A contract on record: the entity's own (unexpired) or a transfer for this service and destination.
contracted := data.policyengine.lib.valid_today(object.get(sets, "contract", {})) | data.policyengine.lib.covered(regime.mechanisms)

transfer_roles := {"ccpa_service_provider": "service_provider", "ccpa_contractor": "contractor", "ccpa_third_party": "third_party"}

# Roles an unexpired transfer records for this service, by destination cluster.
recorded_roles := {c: rs |
	some [_, c] in data.policyengine.lib.valid_cover
	rs := {transfer_roles[t] | some [t, c2] in data.policyengine.lib.valid_cover; c2 == c; transfer_roles[t]}
	count(rs) > 0
}

# One role per destination: a recorded one (a third party when any record says so, the cautious reading
# for an opt-out), else the entity's.
strictest(rs) := "third_party" if "third_party" in rs

else := "contractor" if "contractor" in rs

else := "service_provider"

recorded := object.keys(recorded_roles)

entity_role(r) := object.keys(object.get(object.get(sets, "roles", {}), r, {}))

sold_after_opt_out := (entity_role("third_party") - recorded) | {c | some c, rs in recorded_roles; strictest(rs) == "third_party"} if opted_out

else := set()

recipients := union({entity_role(r) | some r in roles}) | recorded

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
		"remedy": sprintf("honour the opt-out: %s", [data.policyengine.keep_text("the business's own clusters (none is declared)")]),
	}
}

problems[c] := v if {
	some c in refused
	not c in sold_after_opt_out
	v := {
		"rule": "ccpa-recipient-contract",
		"article": data.policyengine.lib.article("CCPA", "contract", "Cal. Civ. Code 1798.100(d)"),
		"message": sprintf("%s %s, whose CCPA role and contract are not recorded (or the contract expired)", [discloses, data.policyengine.lib.policy.clusters[c].entity]),
		"remedy": sprintf("record the role and contract of %s in policies/entities.yaml or policies/transfers.yaml; or %s", [data.policyengine.lib.policy.clusters[c].entity, data.policyengine.keep_text("the business's own clusters (none is declared)")]),
	}
}

