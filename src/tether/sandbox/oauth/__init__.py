"""The sandbox's authorization server: Authlib's protocol code plus SMART glue.

Module per concern: ``models`` (Authlib's client/code/token mixins over the store),
``grants`` (RFC 6749 grants with RFC 7636 S256-only PKCE and the SMART ``aud`` check),
``endpoints`` (RFC 7009 revocation, RFC 7662 introspection), ``server`` (assembly and
the Starlette request/response wrappers).
"""
