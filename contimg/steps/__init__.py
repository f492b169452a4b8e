"""Pipeline steps: each finds its work and does one item, idempotently."""
