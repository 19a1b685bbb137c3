# CCPA / CPRA (Cal. Civ. Code 1798.100(d), 1798.120, 1798.135): no localisation. Moving data between
# clusters the business runs is not a disclosure; personal information of California consumers may go
# to another entity only when its role (service provider, contractor, third party) and its contract are
# recorded; a third party receives a sale/share, refused when the request carries an opt-out (Sec-GPC: 1).
package policyengine.ccpa

import data.policyengine.lib

regime := data.policyengine.policy.regimes.CCPA

roles := {"service_provider", "contractor", "third_party"}

role(c) := r if {
	r := lib.entity(c).ccpa.role
	r != null
}

# The entity's own contract record, or a transfer recorded for this service and that entity/cluster.
contract(c) if {
	e := lib.entity(c)
	e.ccpa.contract != null
	lib.valid(object.get(e.ccpa, "expires", null))
}

contract(c) if lib.valid_mechanism(regime.mechanisms, c)

own(c) if lib.entity(c).self == true

opted_out if input.opt_out == true

permitted(c) if own(c)

permitted(c) if {
	not own(c)
	role(c) in roles
	contract(c)
	not sold_after_opt_out(c)
}

sold_after_opt_out(c) if {
	role(c) == "third_party"
	opted_out
}

problem(c) := v if {
	lib.known(c)
	not own(c)
	sold_after_opt_out(c)
	v := {
		"rule": "ccpa-opt-out",
		"article": lib.article("CCPA", "opt_out", "Cal. Civ. Code 1798.120, 1798.135"),
		"message": sprintf(
			"CCPA: %s holds personal information of California consumers; the route %s -> %s discloses it to %s, a third party (a sale or share), and the request carries an opt-out (Sec-GPC: 1)",
			[lib.service, lib.describe(lib.route.source.cluster), lib.describe(lib.route.destination.cluster), lib.cluster(c).entity],
		),
		"remedy": sprintf("honour the opt-out: route to %s", [permitted_text]),
	}
}

problem(c) := v if {
	lib.known(c)
	not own(c)
	not sold_after_opt_out(c)
	not permitted(c)
	v := {
		"rule": "ccpa-recipient-contract",
		"article": lib.article("CCPA", "contract", "Cal. Civ. Code 1798.100(d)"),
		"message": sprintf(
			"CCPA: %s holds personal information of California consumers; the route %s -> %s discloses it to %s, whose CCPA role and contract are not recorded (or the contract expired)",
			[lib.service, lib.describe(lib.route.source.cluster), lib.describe(lib.route.destination.cluster), lib.cluster(c).entity],
		),
		"remedy": sprintf("record the role and contract of %s in policies/entities.yaml or policies/transfers.yaml, or route to %s", [lib.cluster(c).entity, permitted_text]),
	}
}

permitted_text := lib.join_clusters(data.policyengine.permitted_clusters) if {
	count(data.policyengine.permitted_clusters) > 0
} else := "the business's own clusters (none is declared)"
