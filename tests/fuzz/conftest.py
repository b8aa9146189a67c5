"""Fuzzing runs against a live server where webhook URLs are not resolved (no DNS here)."""

from __future__ import annotations

import pytest

from tether.settings import Settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"webhooks_allow_private": True})
