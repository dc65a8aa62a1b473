"""Small helpers that know nothing about Herald's domains."""
