"""The `policyengine` command (a face: it calls the use cases, never the other way round)."""
