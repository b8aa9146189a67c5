"""The return URLs and browser origins a tenant may register (RFC 8252 §7, RFC 6454)."""

from __future__ import annotations

import pytest

from tether.accounts.return_urls import (
    MAX_URLS,
    check_name,
    check_origin,
    check_origins,
    check_return_url,
    check_return_urls,
)
from tether.errors import InvalidRequest


@pytest.mark.parametrize(
    "url",
    [
        "https://app.example.test/connected",
        "https://app.example.test:8443/connected?from=tether",
        "https://links.example.test/.well-known-app-link/done",  # an app / universal link
        "http://127.0.0.1:8123/callback",
        "http://[::1]:8123/callback",
        "http://localhost/callback",
        "com.example.app:/connected",
        "com.example.health:/oauth/done?x=1",
        "com.example.app://callback",
        "org.example-health.app:/done",
    ],
)
def test_rfc8252_return_urls_are_accepted(url: str) -> None:
    assert check_return_url(url, field="returnUrls[0]") == url


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("javascript:alert(1)", "javascript"),
        ("JavaScript:alert(1)", "javascript"),
        ("data:text/html,<script>alert(1)</script>", "data"),
        ("file:///etc/passwd", "file"),
        ("myapp:/connected", "scheme is not allowed"),  # no dot: not reverse-domain
        ("http://app.example.test/connected", "loopback"),
        ("http://127.0.0.2.example.test/x", "loopback"),
        ("https:///no-host", "needs a host"),
        ("https://app.example.test/done#frag", "fragment"),
        ("https://user@app.example.test/done", "user information"),
        ("https://app.example.test:99999/done", "not a well-formed URL"),
        ("https://app.example.test/a b", "whitespace"),
        ("/relative/path", "not an absolute URL"),
        ("com.example.app:", "needs a path"),
        ("", "non-empty"),
        ("https://a.test/" + "x" * 2000, "longer than"),
    ],
)
def test_other_return_urls_are_refused_naming_the_field(url: str, says: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        check_return_url(url, field="returnUrls[3]")
    assert refused.value.extensions["field"] == "returnUrls[3]"
    assert says in refused.value.detail
    assert refused.value.detail.startswith("returnUrls[3]: ")


def test_lists_refuse_duplicates_too_many_and_non_lists() -> None:
    with pytest.raises(InvalidRequest) as twice:
        check_return_urls(["https://a.test/x", "com.example.app:/x", "https://a.test/x"])
    assert twice.value.code == "DUPLICATE" and twice.value.extensions["field"] == "returnUrls[2]"
    many = [f"https://a.test/{i}" for i in range(MAX_URLS + 1)]
    with pytest.raises(InvalidRequest) as too_many:
        check_return_urls(many)
    assert too_many.value.code == "TOO_MANY" and too_many.value.extensions["field"] == "returnUrls"
    assert check_return_urls(many[:MAX_URLS]) == many[:MAX_URLS]
    with pytest.raises(InvalidRequest):
        check_return_urls("https://a.test/x")


def test_origins_are_normalised_and_checked() -> None:
    assert check_origin("https://App.Example.test/") == "https://app.example.test"
    assert check_origin("https://app.example.test:443") == "https://app.example.test"
    assert check_origin("http://localhost:3000") == "http://localhost:3000"
    assert check_origin("capacitor://localhost") == "capacitor://localhost"
    for bad in ("*", "https://a.test/path", "https://a.test?x=1", "app.example.test", "null"):
        with pytest.raises(InvalidRequest) as refused:
            check_origins([bad])
        assert refused.value.extensions["field"] == "allowedOrigins[0]", bad
    with pytest.raises(InvalidRequest) as twice:
        check_origins(["https://a.test", "https://A.test/"])
    assert twice.value.code == "DUPLICATE"


def test_names_are_trimmed_and_bounded() -> None:
    assert check_name("  Acme Health ") == "Acme Health"
    for bad in ("", "   ", "x" * 201, "bad\x00name", None):
        with pytest.raises(InvalidRequest) as refused:
            check_name(bad)
        assert refused.value.extensions["field"] == "name"
