"""Observability: /metrics and the schema half of /ready."""
