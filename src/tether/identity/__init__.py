"""Identity: every credential tether issues or accepts, and the one way to check each.

=====================  ==========================================  ===========================
credential             who holds it                                module
=====================  ==========================================  ===========================
API key                the tenant's server                         :mod:`.api_keys`
member token           the member's app, the SDK, the CLI           :mod:`.member_tokens`
SDK token set          the health SDK's client (getToken, refresh)  :mod:`.sdk_tokens`
app link               the member's browser, once                   :mod:`.app_links`
page session           the member page's cookie                     :mod:`.page_sessions`
=====================  ==========================================  ===========================

Adapters turn a bearer credential into a principal with :func:`.credentials.authenticate`
(or :func:`.credentials.authenticate_member`) and check its kind with
:func:`.principals.member_only` / :func:`.principals.tenant_only`; every credential's liveness
(member, tenant, minting key) is :func:`.liveness.require_live`.
"""
