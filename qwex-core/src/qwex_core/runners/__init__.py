"""Runners: the interface every backend implements, and the local runner."""
