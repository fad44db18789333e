"""Deterministic demo data: generated KPM and named demo cards for every field situation."""
