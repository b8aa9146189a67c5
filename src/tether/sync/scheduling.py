"""Temporary: moves here with the sync split."""

from tether.sync.service import request_sync

__all__ = ["request_sync"]
