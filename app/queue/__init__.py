"""The durable job queue (PgQueuer) in Herald's own PostgreSQL."""
