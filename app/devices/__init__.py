"""Devices a user connected from, with their web-push subscriptions."""
