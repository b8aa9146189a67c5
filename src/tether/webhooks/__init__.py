"""Webhooks: the tenant's endpoints and the delivery of its events to them, signed as the
Standard Webhooks specification says (:mod:`tether.webhooks.signing`), never to addresses
inside the operator's network (:mod:`tether.webhooks.ssrf`), at least once and in order per
endpoint (:mod:`tether.webhooks.delivery`)."""
