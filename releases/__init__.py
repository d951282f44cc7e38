"""Releases: environments, canary strategies, analysis, deploy drivers and the controller."""
