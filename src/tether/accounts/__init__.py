"""Tenants, API keys, members and member tokens: the workflow's prerequisite."""
