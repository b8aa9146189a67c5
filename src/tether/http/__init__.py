"""What every HTTP adapter (REST, GraphQL, the web pages) shares: the runtime and the caller as
FastAPI dependencies, RFC 9457 problem responses, request ids and the access log, origins."""
