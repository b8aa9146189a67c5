"""tether's HTML pages: the member page (``/app``) and the browser side of the OAuth flow.

- :mod:`tether.web.member_page`: the page and its fragments, a thin adapter over the services;
- :mod:`tether.web.oauth`: ``/oauth/launch/{token}`` and ``/oauth/callback``;
- :mod:`tether.web.cookies`: the session cookie and the CSRF and origin checks;
- :mod:`tether.web.render` and :mod:`tether.web.presenters`: HTML, headers and plain words.

App links and page sessions are credentials: :mod:`tether.identity`. docs/web.md describes how
an app links to or embeds the page.
"""
