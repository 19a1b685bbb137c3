"""policyengine.audit"""
