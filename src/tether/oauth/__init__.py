"""OAuth client side: SMART App Launch 2.x on Authlib's client (PKCE S256, RFC 7009)."""
