"""Secrets never reach a log line: keys are masked and patterns scrubbed."""

import json
import logging

import pytest

from tether.logging import MASK, configure_logging, get_logger, redact, scrub


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("GET /oauth/callback?code=abc123&state=xyz789", "abc123"),
        ("GET /oauth/callback?code=abc123&state=xyz789", "xyz789"),
        ("redirect to /oauth/launch/AbCdEf_123-xyz now", "AbCdEf_123-xyz"),
        ("Authorization: Bearer s3cr3t.tok-en", "s3cr3t.tok-en"),
        ("jwt eyJhbGciOi.eyJzdWIiOiJ4In0.c2lnbmF0dXJl here", "eyJzdWIiOiJ4In0"),
        ("key tk_abc123_ZZZsecretZZZ used", "ZZZsecretZZZ"),
        ("grant_type=refresh_token&refresh_token=rt-999", "rt-999"),
    ],
)
def test_scrub_removes_secret_patterns(text: str, secret: str) -> None:
    assert secret not in scrub(text)


def test_redact_masks_sensitive_keys_recursively() -> None:
    event = {
        "access_token": "at",
        "nested": {"refresh_token": "rt", "Authorization": "Basic x", "ok": "fine"},
        "items": [{"code": "c"}],
    }
    out = redact(event)
    assert out["access_token"] == MASK
    assert out["nested"]["refresh_token"] == MASK
    assert out["nested"]["Authorization"] == MASK
    assert out["nested"]["ok"] == "fine"
    assert out["items"][0]["code"] == MASK


def test_configured_logging_redacts_structlog_and_stdlib(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(level="INFO", json_output=True)
    get_logger("tether.test").info("exchanging", code="the-code", url="/cb?state=st4te")
    logging.getLogger("some.library").warning("client sent Bearer abc.def.ghi")
    try:
        raise RuntimeError("failed with refresh_token=leaky")
    except RuntimeError:
        get_logger("tether.test").exception("boom")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    text = json.dumps(lines)
    assert len(lines) == 3
    for secret in ("the-code", "st4te", "abc.def.ghi", "leaky"):
        assert secret not in text
    assert lines[0]["code"] == MASK


def test_the_log_follows_stderr_as_it_is_when_written(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stderr swapped and closed after logging was configured (a test runner's capture, a
    process manager) neither loses the next line nor fails it with a logging error."""
    import io

    configured_with = io.StringIO()
    monkeypatch.setattr("sys.stderr", configured_with)
    configure_logging(level="INFO", json_output=True)
    configured_with.close()
    now = io.StringIO()
    monkeypatch.setattr("sys.stderr", now)
    get_logger("tether.test").info("written later")
    assert json.loads(now.getvalue())["event"] == "written later"

    silenced = [h for h in logging.getLogger().handlers if h.get_name() == "tether"]
    assert len(silenced) == 1
    with io.StringIO() as chosen:
        silenced[0].setStream(chosen)  # a stream chosen on purpose is kept
        get_logger("tether.test").info("to the chosen stream")
        assert "to the chosen stream" in chosen.getvalue()
        silenced[0].setStream(now)
    assert "to the chosen stream" not in now.getvalue()
