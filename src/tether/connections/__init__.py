"""Member connections: the lifecycle, establishing (OAuth), viewing, refreshing tokens."""
