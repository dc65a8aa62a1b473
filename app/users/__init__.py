"""App users (recipients) and their profiles."""
