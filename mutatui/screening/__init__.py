"""Screening: running many mutations against probes, fast and exactly (no UI, no SQL)."""
