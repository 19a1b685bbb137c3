# Shared lookups for the residency rules: clusters, entities, dates, recorded mechanisms.
# Everything comes from data.policyengine.policy (the loaded policy repo) and the input route.
package policyengine.lib

policy := data.policyengine.policy

route := input.route

service := route.service

# The calendar date of the decision (YYYY-MM-DD): time comes from the input, never from the clock.
today := substring(input.time, 0, 10)

# A date-limited item is valid on the decision date; null means it does not expire.
valid(expires) if expires == null

valid(expires) if {
	expires != null
	expires >= today
}

cluster(name) := policy.clusters[name]

known(name) if policy.clusters[name]

entity(name) := policy.entities[policy.clusters[name].entity]

# "eu-1 (aws/eu-central-1, DE)"; an unknown cluster is named as such.
describe(name) := sprintf("%s (%s, %s)", [name, c.region, c.jurisdiction]) if {
	c := policy.clusters[name]
} else := sprintf("%s (unknown cluster)", [name])

# The regimes of the data the route moves: what either end holds.
regimes := {r | some e in [route.source, route.destination]; some r in object.get(e, "regimes", [])}

# Both ends of the route by cluster name.
ends := {route.source.cluster, route.destination.cluster}

# The other end of the route, seen from cluster c.
other_end(c) := route.destination.cluster if c == route.source.cluster

else := route.source.cluster

# The cluster is in one of the jurisdictions or groups listed (its `in` holds itself, parents, groups).
located_in(name, places) if {
	some j in policy.clusters[name].in
	j in places
}

# A recorded transfer destination covers cluster c: by cluster, jurisdiction or entity.
destination_covers(d, c) if d.cluster == c

destination_covers(d, c) if {
	d.jurisdiction != null
	d.jurisdiction in policy.clusters[c].in
}

destination_covers(d, c) if {
	d.entity != null
	d.entity == policy.clusters[c].entity
}

# Recorded mechanisms (of the given types) for this route's service towards cluster c.
mechanisms(types, c) := [t |
	some t in policy.transfers
	t.type in types
	t.service in {service, "*"}
	destination_covers(t.destination, c)
]

valid_mechanism(types, c) if {
	some t in mechanisms(types, c)
	valid(t.expires)
}

# The newest expired mechanism, when no valid one exists: its id and expiry help the remedy.
expired_mechanism(types, c) := t if {
	not valid_mechanism(types, c)
	ms := [m | some m in mechanisms(types, c); not valid(m.expires)]
	count(ms) > 0
	t := ms[0]
}

article(regime, key, fallback) := object.get(object.get(policy.regimes[regime], "articles", {}), key, fallback)

# Clusters every regime of the route permits, as a readable list for remedies.
join_clusters(cs) := concat(", ", sort(cs))
