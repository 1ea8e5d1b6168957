"""Simulators for the demo and the tests. Not production code: nothing here runs in a deployment."""
