"""Sending: accept a request in one transaction, idempotency, cancellation, fan-out."""
