"""policyengine.admission"""
