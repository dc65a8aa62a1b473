"""Live inbox updates over socket.io, fed by PostgreSQL LISTEN in every process."""
