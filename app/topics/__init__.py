"""Topics: named audiences that users subscribe to, with per-subscription channels."""
