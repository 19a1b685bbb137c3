# The decision for one route: data.policyengine.decision (the one entry point Python evaluates).
#
# The route's data is what both ends hold; it moves both ways, so every regime of it must permit both
# clusters. A cluster the policy repo does not know is never permitted. Each violation names the
# regime, rule, article, the clusters and regions, and a remedy; the enforcement is the strongest
# action configured for the violated regimes in this namespace.
package policyengine

regimes := sort(data.policyengine.lib.regimes)

builtin_regimes := {"GDPR", "PIPL", "CCPA"}

# The set of clusters a regime permits for this route. A policy repo may add its own regime with its
# own `permitted_set` and `regime_problem` rules in this package; a regime without rules permits its
# home and the clusters covered by its recorded mechanisms.
permitted_set("GDPR") := data.policyengine.gdpr.permitted

permitted_set("PIPL") := data.policyengine.pipl.permitted

permitted_set("CCPA") := data.policyengine.ccpa.permitted

permitted_set(r) := s if {
	not r in builtin_regimes
	s := data.policyengine.lib.members(r, "home") | data.policyengine.lib.covered(data.policyengine.lib.policy.regimes[r].mechanisms)
}

# Why each refused end is refused, by regime: {regime: {cluster: problem}}, only for the route's regimes.
problems_of("GDPR") := data.policyengine.gdpr.problems

problems_of("PIPL") := data.policyengine.pipl.problems

problems_of("CCPA") := data.policyengine.ccpa.problems

problems_of(r) := ps if {
	not r in builtin_regimes
	ps := {c: v |
		some c in data.policyengine.lib.known_ends
		not c in permitted_by[r]
		v := {
			"rule": sprintf("%s-transfer", [lower(r)]),
			"article": data.policyengine.lib.article(r, "transfer", r),
			"message": sprintf("%s: %s holds data governed by %s; the route %s -> %s moves it outside %s's home with no mechanism recorded", [r, data.policyengine.lib.service, r, data.policyengine.lib.source_text, data.policyengine.lib.destination_text, r]),
			"remedy": sprintf("keep the route to %s, or record a mechanism for %s to %s in policies/transfers.yaml", [data.policyengine.lib.join_clusters(permitted_clusters), data.policyengine.lib.service, c]),
		}
	}
}

regime_problems := {r: problems_of(r) | some r in data.policyengine.lib.regimes}

# Clusters that every regime of the route permits (all known clusters for unregulated data).
permitted_by := {r: permitted_set(r) | some r in data.policyengine.lib.regimes}

permitted_clusters := sort(intersection({s | some s in permitted_by} | {data.policyengine.lib.all_clusters}))

# Where a remedy tells the data to stay: the clusters every regime of the route permits; when no
# cluster satisfies them all at once (GDPR and PIPL data between the mainland and Hong Kong), it says
# so, naming what each regime permits; `fallback` names the regime's home when nothing is declared.
keep_text(fallback) := sprintf("keep the route to %s", [data.policyengine.lib.join_clusters(permitted_clusters)]) if {
	count(permitted_clusters) > 0
} else := conflict_text if {
	count(regimes) > 1
} else := sprintf("keep the route to %s", [fallback])

conflict_text := sprintf("no declared cluster satisfies %s at once (%s): keep the data of each regime in a service of its own", [concat(" and ", regimes), concat("; ", [sprintf("%s permits %s", [r, permits_text(permitted_by[r])]) | some r in regimes])])

permits_text(clusters) := data.policyengine.lib.join_clusters(clusters) if count(clusters) > 0

else := "no declared cluster"

# Enforcement: the first rule of policies/enforcement.yaml matching regime and namespace, else the
# repo default. The index lists, per regime, the action of each namespace a rule names exactly and the
# wildcard/prefix rules in order for any other namespace (policyengine/policy/index.py).
default_action := object.get(object.get(data.policyengine.lib.policy, "enforcement", {}), "default", "deny")

namespace := object.get(data.policyengine.lib.route, "namespace", "")

action_of := {r: a |
	some r in regime_or_residency
	rules := object.get(data.policyengine.lib.index.enforcement, r, {"exact": {}, "prefixes": []})
	candidates := array.concat(
		[object.get(rules.exact, namespace, null)],
		[e[1] | some e in rules.prefixes; startswith(namespace, e[0])],
	)
	found := [x | some x in candidates; x != null]
	a := array.concat(found, [default_action])[0]
}

regime_or_residency := data.policyengine.lib.regimes if count(data.policyengine.lib.regimes) > 0

else := {"RESIDENCY"}

strength := {"dryrun": 0, "warn": 1, "rewrite": 2, "deny": 3}

action_names := ["dryrun", "warn", "rewrite", "deny"]

unknown_cluster_violations contains v if {
	some c in data.policyengine.lib.ends
	not c in data.policyengine.lib.known_ends
	some r in regime_or_residency
	v := {
		"regime": r,
		"rule": "unknown-cluster",
		"article": "policyengine: only the policy repo says where a cluster is",
		"message": sprintf("%s: the route %s -> %s for %s involves cluster %q, which policies/clusters.yaml does not declare, so where it runs is unknown", [r, data.policyengine.lib.source_text, data.policyengine.lib.destination_text, data.policyengine.lib.service, c]),
		"remedy": sprintf("declare %q with its region and entity in policies/clusters.yaml; or %s", [c, keep_text("a declared cluster")]),
		"cluster": c,
		"enforcement": action_of[r],
	}
}

regime_violations contains v if {
	some r, problems in regime_problems
	some c, p in problems
	v := object.union(p, {"regime": r, "cluster": c, "enforcement": action_of[r]})
}

violations := regime_violations | unknown_cluster_violations

enforcement := action_names[max([strength[v.enforcement] | some v in violations])] if {
	count(violations) > 0
} else := action_names[max([strength[a] | some a in action_of])]

decision := {
	"allowed": count(violations) == 0,
	"violations": sort([v | some v in violations]),
	"permitted_clusters": permitted_clusters,
	"enforcement": enforcement,
	"regimes": regimes,
}
