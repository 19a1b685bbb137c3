"""policyengine.routing"""
