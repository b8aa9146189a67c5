"""tether: a self-hostable connection manager for consumer health data."""
