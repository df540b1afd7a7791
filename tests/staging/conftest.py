"""The staging tests' marker: ``slow`` (an end-to-end bring-up of the whole site; the default
run and CI include it, ``-m "not slow"`` leaves it out)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: end-to-end, tens of seconds (staging bring-up)")
