"""Webhook tests: a receiver on loopback (so private targets are allowed here, as in the demo)
and a delivery schedule shortened from minutes to fractions of a second."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.webhooks.receiver import Receiver, start_receiver
from tether.settings import Settings
from tether.webhooks import delivery


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"webhooks_allow_private": True, "webhook_timeout": 2.0})


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = start_receiver()
    yield found
    found.close()


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The schedule's shape, in tenths of a second (5 s … 10 h would outlast any test)."""
    monkeypatch.setattr(delivery, "SCHEDULE", (0.2, 0.3, 0.4, 0.5, 0.5, 0.5, 0.5))
