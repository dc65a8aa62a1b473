"""Retention: settings, the periodic purge and `herald purge`."""
