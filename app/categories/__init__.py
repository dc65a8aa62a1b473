"""Notification categories (inbox tabs and preference rows)."""
