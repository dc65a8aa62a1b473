"""Herald: a self-hosted notification server speaking the Engagespot v3 API."""
