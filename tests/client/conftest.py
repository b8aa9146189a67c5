"""The SDK's tests share the fixtures of ``tests.client.fixtures``."""

import pytest

from tests.client.fixtures import sdk, worker

__all__ = ["sdk", "worker"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: builds a virtualenv and installs into it (~30 s)")
