"""policyengine.policy"""
