"""The member connections page (``/app``) and the app links that open it.

- :mod:`tether.web.api`: ``POST /v1/members/{id}/app-links`` for the tenant's server;
- :mod:`tether.web.pages`: the page and its fragments, a thin adapter over the services;
- :mod:`tether.web.links` and :mod:`tether.web.session`: handing the member over safely;
- :mod:`tether.web.render` and :mod:`tether.web.views`: HTML, headers and plain words.

docs/web.md describes how an app links to or embeds the page.
"""
