"""interlace's pytest plugin (registered under ``pytest11``).

It is loaded by every pytest run in an environment where interlace is
installed, so it imports nothing heavy at module level.
"""

from __future__ import annotations

import sys

import pytest


def pytest_report_header(config: pytest.Config) -> str:
    version = ".".join(str(part) for part in sys.version_info[:3])
    return f"interlace: deterministic scheduler on Python {version}"
