"""Helpers for tests and docs that drive tether over real HTTP on loopback."""
