"""Metrics backends (builtin, Prometheus) and the builtin backend's scraper and storage.

A lower layer: releases, dashboards, alerts and DORA all read metrics through it; nothing in
here imports pipelines, infra, monitoring or releases.
"""
