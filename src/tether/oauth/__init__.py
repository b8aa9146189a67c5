"""OAuth and SMART App Launch as a client, one module per standard (protocol glue on Authlib).

- :mod:`tether.oauth.smart_discovery`: SMART App Launch 2.x discovery (§2.3), cached per base;
- :mod:`tether.oauth.rfc7636`: the authorization request with PKCE S256, state and ``aud``;
- :mod:`tether.oauth.rfc6749`: the token endpoint (code exchange, refresh, password grant);
- :mod:`tether.oauth.rfc7009`: token revocation.

Pure protocol: no database, no runtime; the connection services compose them.
"""
