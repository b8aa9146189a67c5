"""Tenants (the health apps) and their members: the prerequisites of every operation.

Credentials (API keys, member tokens and the rest) are :mod:`tether.identity`'s.
"""
