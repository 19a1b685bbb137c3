# The decision for one route: data.policyengine.decision (the one entry point Python evaluates).
#
# The route's data is what both ends hold; it moves both ways, so every regime of it must permit both
# clusters. A cluster the policy repo does not know is never permitted. Each violation names the
# regime, rule, article, the clusters and regions, and a remedy; the enforcement is the strongest
# action configured for the violated regimes in this namespace.
package policyengine

import data.policyengine.ccpa
import data.policyengine.gdpr
import data.policyengine.lib
import data.policyengine.pipl

regimes := sort(lib.regimes)

# Regime dispatch: a policy repo may add its own regime by adding rules for its name here.
regime_permits("GDPR", c) if gdpr.permitted(c)

regime_permits("PIPL", c) if pipl.permitted(c)

regime_permits("CCPA", c) if ccpa.permitted(c)

# A regime without its own rules permits its home and recorded mechanisms only.
regime_permits(r, c) if {
	not r in {"GDPR", "PIPL", "CCPA"}
	generic_permits(r, c)
}

generic_permits(r, c) if lib.located_in(c, data.policyengine.policy.regimes[r].home)

generic_permits(r, c) if lib.valid_mechanism(data.policyengine.policy.regimes[r].mechanisms, c)

regime_problem("GDPR", c) := gdpr.problem(c)

regime_problem("PIPL", c) := pipl.problem(c)

regime_problem("CCPA", c) := ccpa.problem(c)

regime_problem(r, c) := v if {
	not r in {"GDPR", "PIPL", "CCPA"}
	lib.known(c)
	not generic_permits(r, c)
	v := {
		"rule": sprintf("%s-transfer", [lower(r)]),
		"article": lib.article(r, "transfer", r),
		"message": sprintf("%s: %s holds data governed by %s; the route %s -> %s moves it outside %s's home with no mechanism recorded", [r, lib.service, r, lib.describe(lib.route.source.cluster), lib.describe(lib.route.destination.cluster), r]),
		"remedy": sprintf("keep the route to %s, or record a mechanism for %s to %s in policies/transfers.yaml", [lib.join_clusters(permitted_clusters), lib.service, c]),
	}
}

# Clusters that every regime of the route permits (all known clusters for unregulated data).
permitted_clusters := sort([c |
	some c, _ in data.policyengine.policy.clusters
	every r in regimes {
		regime_permits(r, c)
	}
])

# Enforcement: the first rule matching regime and namespace, else the repo default.
enforcement_rules := object.get(object.get(data.policyengine.policy, "enforcement", {}), "rules", [])

default_action := object.get(object.get(data.policyengine.policy, "enforcement", {}), "default", "deny")

namespace_matches(patterns) if "*" in patterns

namespace_matches(patterns) if lib.route.namespace in patterns

namespace_matches(patterns) if {
	some p in patterns
	endswith(p, "*")
	startswith(lib.route.namespace, trim_suffix(p, "*"))
}

action_for(r) := actions[0] if {
	actions := [rule.action |
		some rule in enforcement_rules
		rule.regime in {r, "*"}
		namespace_matches(object.get(rule, "namespaces", ["*"]))
	]
	count(actions) > 0
} else := default_action

strength := {"dryrun": 0, "warn": 1, "rewrite": 2, "deny": 3}

unknown_cluster_violations contains v if {
	some c in lib.ends
	not lib.known(c)
	some r in regime_or_residency
	v := {
		"regime": r,
		"rule": "unknown-cluster",
		"article": "policyengine: only the policy repo says where a cluster is",
		"message": sprintf("%s: the route %s -> %s for %s involves cluster %q, which policies/clusters.yaml does not declare, so where it runs is unknown", [r, lib.describe(lib.route.source.cluster), lib.describe(lib.route.destination.cluster), lib.service, c]),
		"remedy": sprintf("declare %q with its region and entity in policies/clusters.yaml, or route to %s", [c, lib.join_clusters(permitted_clusters)]),
		"cluster": c,
		"enforcement": action_for(r),
	}
}

regime_or_residency := regimes if count(regimes) > 0

else := ["RESIDENCY"]

regime_violations contains v if {
	some r in regimes
	some c in lib.ends
	p := regime_problem(r, c)
	v := object.union(p, {"regime": r, "cluster": c, "enforcement": action_for(r)})
}

violations := regime_violations | unknown_cluster_violations

action_names := ["dryrun", "warn", "rewrite", "deny"]

enforcement := action_names[max([strength[v.enforcement] | some v in violations])] if {
	count(violations) > 0
} else := action_names[max([strength[action_for(r)] | some r in regimes])] if {
	count(regimes) > 0
} else := default_action

decision := {
	"allowed": count(violations) == 0,
	"violations": sort([v | some v in violations]),
	"permitted_clusters": permitted_clusters,
	"enforcement": enforcement,
	"regimes": regimes,
}
