# Step-by-step evidence for one route (`policyengine explain`): where each end is, which regimes the
# data carries, what each regime says about each end, and the mechanisms on record.
package policyengine.explain

permits(r, c) := c in data.policyengine.permitted_by[r]

ends := array.concat(known_ends, unknown_ends)

known_ends := [end |
	some [role, e] in [["source", data.policyengine.lib.route.source], ["destination", data.policyengine.lib.route.destination]]
	c := data.policyengine.lib.policy.clusters[e.cluster]
	end := {
		"role": role, "cluster": e.cluster, "known": true, "region": c.region,
		"jurisdiction": c.jurisdiction, "in": c.in, "entity": c.entity,
		"regimes": object.get(e, "regimes", []), "data_classes": object.get(e, "data_classes", []),
		"subjects": object.get(e, "subjects", []),
	}
]

unknown_ends := [end |
	some [role, e] in [["source", data.policyengine.lib.route.source], ["destination", data.policyengine.lib.route.destination]]
	not e.cluster in data.policyengine.lib.known_ends
	end := {"role": role, "cluster": e.cluster, "known": false}
]

checks := [check |
	some r in data.policyengine.regimes
	some c in data.policyengine.lib.known_ends
	types := object.get(object.get(data.policyengine.lib.policy.regimes, r, {}), "mechanisms", [])
	check := {
		"regime": r, "cluster": c, "permitted": permits(r, c),
		"facts": object.get(object.get(data.policyengine.lib.index.regimes, r, {}), c, {}),
		"mechanisms": [{"id": t.id, "type": t.type, "expires": t.expires, "valid": t.until >= data.policyengine.lib.today} |
			some t in data.policyengine.lib.service_transfers
			t.type in types
			c in t.clusters
		],
	}
]

result := {
	"ends": ends,
	"regimes": data.policyengine.regimes,
	"checks": checks,
	"decision": data.policyengine.decision,
	"today": data.policyengine.lib.today,
}
