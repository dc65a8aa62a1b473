"""Apps (tenants): credentials, security switches and signing keys."""
