"""HTTP adapters: REST under /v1, OAuth endpoints, health checks. Thin over the services."""
