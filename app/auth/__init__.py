"""Who is calling: app credentials, inbox users (id, HMAC, RS256 JWT) and the admin."""
