# Shared lookups for the residency rules: the route, its ends, the decision date, recorded mechanisms.
# Everything comes from data.policyengine.policy (the loaded policy repo, with its static `index` of
# per-cluster facts) and the input route. Rules here have no arguments where possible: a rule without
# arguments is computed once per decision, a function on every call.
package policyengine.lib

policy := data.policyengine.policy

index := data.policyengine.policy.index

route := input.route

service := route.service

# The calendar date of the decision (YYYY-MM-DD): time comes from the input, never from the clock.
today := substring(input.time, 0, 10)

# The regimes of the data the route moves: what either end holds.
regimes := {r | some e in [route.source, route.destination]; some r in object.get(e, "regimes", [])}

# Both ends of the route by cluster name, and the subset the policy repo declares.
ends := {route.source.cluster, route.destination.cluster}

known_ends := {c | some c in ends; policy.clusters[c]}

all_clusters := object.keys(index.sets.clusters)

# A regime's static facts as sets ({cluster: true}, policyengine/policy/index.py): taken whole with
# object.keys, never by a comprehension over every cluster.
sets(regime) := object.get(index.sets.regimes, regime, {})

members(regime, name) := object.keys(object.get(sets(regime), name, {}))

# The clusters of dated groups ({until: {cluster: true}}) still valid on the decision date.
valid_today(groups) := union({object.keys(cs) | some until, cs in groups; until >= today})

# "eu-1 (aws/eu-central-1, DE)" for each end; an unknown cluster is named as such.
known_text := {c: sprintf("%s (%s, %s)", [c, cl.region, cl.jurisdiction]) | some c in known_ends; cl := policy.clusters[c]}

unknown_text := {c: sprintf("%s (unknown cluster)", [c]) | some c in ends; not c in known_ends}

describe := object.union(known_text, unknown_text)

source_text := describe[route.source.cluster]

destination_text := describe[route.destination.cluster]

# Mechanisms recorded for this service (or for every service), each with the clusters it covers and
# `until` (its expiry, "9999-12-31" when none).
service_transfers := array.concat(object.get(index.transfers, service, []), object.get(index.transfers, "*", []))

# [type, cluster] pairs of unexpired mechanisms on the decision date.
valid_cover := {[t.type, c] | some t in service_transfers; t.until >= today; some c in t.clusters}

# Expired mechanisms by cluster (only the ends matter for messages).
expired_at := {c: ts |
	some c in known_ends
	ts := [t | some t in service_transfers; t.until < today; c in t.clusters]
	count(ts) > 0
}

# Clusters covered by an unexpired mechanism of one of the types.
covered(types) := {c | some [ty, c] in valid_cover; ty in types}

# The first expired mechanism of one of the types at each end that has one.
expired_of(types) := {c: ts[0] |
	some c, all in expired_at
	ts := [t | some t in all; t.type in types]
	count(ts) > 0
}

article(regime, key, fallback) := object.get(object.get(policy.regimes[regime], "articles", {}), key, fallback)

join_clusters(cs) := concat(", ", sort(cs))
