"""Deliveries beyond the inbox: providers per app, per-recipient deliveries, retries, the log."""
