# Builders shared by the Rego unit tests: routes between the example clusters with typical data.
package tests.support

none := {"regimes": [], "data_classes": [], "subjects": [], "pipl": null}

gdpr := {"regimes": ["GDPR"], "data_classes": ["personal"], "subjects": ["EEA"], "pipl": null}

ccpa := {"regimes": ["CCPA"], "data_classes": ["personal"], "subjects": ["US-CA"], "pipl": null}

pipl(classes, volume, sensitive_volume, ciio) := {
	"regimes": ["PIPL"], "data_classes": classes, "subjects": ["CN"],
	"pipl": {"volume": volume, "sensitive_volume": sensitive_volume, "ciio": ciio},
}

# The profile service of the example: sensitive PI of 250,000 people, 5,000 of them sensitive.
profile := pipl(["personal", "sensitive"], 250000, 5000, false)

at(service, src, src_data, dst, dst_data, time) := {
	"route": {
		"service": service, "namespace": split(service, "/")[0], "via": "rego test",
		"source": object.union({"cluster": src}, src_data),
		"destination": object.union({"cluster": dst}, dst_data),
	},
	"opt_out": false,
	"time": time,
}

route(service, src, src_data, dst, dst_data) := at(service, src, src_data, dst, dst_data, "2026-11-26T12:00:00Z")

opted_out(r) := object.union(r, {"opt_out": true})

rules(d) := {v.rule | some v in d.violations}

regimes_hit(d) := {v.regime | some v in d.violations}

blamed(d) := {v.cluster | some v in d.violations}

# Index facts for clusters a test adds (docs: policyengine/policy/index.py).
facts_abroad := {"home": false, "adequate_until": "", "unmet_condition": null, "own": false, "role": null, "contract_until": ""}

facts_adequate(until) := object.union(facts_abroad, {"adequate_until": until, "own": true})

facts_not_adequate(condition) := object.union(facts_abroad, {"unmet_condition": condition})

transfer(id, type, expires, clusters) := {"id": id, "type": type, "expires": expires, "until": until, "clusters": clusters} if {
	expires != null
	until := expires
} else := {"id": id, "type": type, "expires": expires, "until": "9999-12-31", "clusters": clusters}

# A cluster a test adds: run in the US by an entity the repo records nothing for (no CCPA role, no
# contract, no DPF certification); give it index facts with `facts_abroad` and the like. The index's
# sets (index.sets) do not list it, and a `with` cannot take a cluster out of them: OPA merges a `with`
# value over the data object it replaces when a rule reads it, so tests add clusters, never remove them.
vendor_cluster := {"name": "vendor-1", "region": "aws/us-east-1", "jurisdiction": "US", "in": ["US"], "entity": "vendor"}
