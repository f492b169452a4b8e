"""Operator-facing summaries built from the state layer (no SQL here)."""
