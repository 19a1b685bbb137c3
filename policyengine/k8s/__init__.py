"""Live clusters through the official `kubernetes` client: the only package that imports it.

- `client`: an ApiClient from a kubeconfig (and context) or the in-cluster service account.
- `kinds`: the kinds policyengine reads (the inventory's and every crossing kind the scan decides) and
  writes (PolicyReports, OpenReports, the scan's Lease), one table the RBAC of deploy/ is checked against.
- `listing`: list (paged) and watch of any kind, as plain dicts.
- `inventory`: list + watch of what decisions observe, published as an immutable `Observations`.
- `lease`, `scan`, `reports_writer`: the background scan (one leader), its audit rows and PolicyReports.
"""
