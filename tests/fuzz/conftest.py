"""Fuzzing runs against a live server where webhook URLs are not resolved (no DNS here)
and rate limits are off."""

from __future__ import annotations

import pytest

from tether.settings import Settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Thousands of generated requests a minute with one credential: limits off here (they
    # have their own tests in tests/api/test_rate_limits.py).
    return settings.model_copy(
        update={
            "webhooks_allow_private": True,
            "rate_limit_api_key": 0,
            "rate_limit_member": 0,
            "rate_limit_anonymous": 0,
        }
    )
