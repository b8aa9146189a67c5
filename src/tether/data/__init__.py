"""The data side: reading the members' stored health data back."""
