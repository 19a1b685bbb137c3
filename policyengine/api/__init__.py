"""HTTP faces of policyengine (FastAPI): admission webhook, routing filter, audit, health."""
