"""Run a block with the app's settings (`acibatch.settings.current`) read from given environment variables."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import pytest

from acibatch.settings import current

# Storage settings a developer's shell may hold: a block that does not set them runs with storage off.
STORAGE_VARIABLES = ("BATCH_STORAGE_CONNECTION_STRING", "BATCH_STORAGE_ACCOUNT_URL")


@contextmanager
def app_settings(env: Mapping[str, str]) -> Iterator[None]:
    """The settings are read once per process (`current` is cached), so the cache is cleared on the way in and out."""
    with pytest.MonkeyPatch.context() as patch:
        for name in STORAGE_VARIABLES:
            patch.delenv(name, raising=False)
        for name, value in env.items():
            patch.setenv(name, value)
        current.cache_clear()
        try:
            yield
        finally:
            current.cache_clear()
    current.cache_clear()
