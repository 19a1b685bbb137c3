"""policyengine.engine"""
