"""The operator console (`/ui`) in headless Chromium, driven by Playwright for Python, against a
real `warden serve` whose agent is the real `mcp` client and the real `openai` SDK (through the
model proxy, on the mock model provider). The fixtures are in console_support.py.

Run with `WARDEN_SCREENSHOTS=docs/console` to refresh the screenshots docs/console.md shows.
"""

from __future__ import annotations

from console_support import (  # noqa: F401 — fixtures
    Console,
    Tab,
    browser,
    console,
    model_provider,
    new_tab,
    shot,
)
