"""Sending notifications and the in-app inbox."""
