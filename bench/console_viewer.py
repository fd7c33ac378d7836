"""Keeps a headless Chromium open on the console's live timeline of one session, for the
benchmarks (bench/gateway.sh and bench/models.sh with CONSOLE=1): what an operator watching the
session live costs the action path.

It signs in with an operator credential, opens `/ui/sessions/{id}`, prints `viewing` once the
page is there, and stays until SIGTERM or SIGINT; then it prints how many timeline rows the page
had at the start and at the end (rows appended live, with no reload) as one JSON line.

Usage: .venv/bin/python bench/console_viewer.py --console http://127.0.0.1:8701 \
           --token-file DATA/operator.token --session SESSION_ID
Needs Playwright for Python (requirements-test.txt, in .venv) and Debian's chromium
(/usr/bin/chromium; scripts/test.sh installs both).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

ROWS = "[id^='seq-']"


class Stop(Exception):
    """SIGTERM or SIGINT arrived."""


def _stop(_signum: int, _frame: object) -> None:
    raise Stop


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--console", required=True, help="the operator plane's URL")
    ap.add_argument("--token-file", required=True, type=Path, help="an admin credential")
    ap.add_argument("--session", required=True, help="the session whose timeline to watch")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--every", type=float, default=1.0, help="seconds between row counts")
    args = ap.parse_args()
    token = args.token_file.read_text().strip()
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=args.chromium, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(base_url=args.console)
        page.set_default_timeout(30_000)
        page.goto("/ui/login")
        page.fill("input[name='token']", token)
        page.click("form[action='/ui/login'] button[type='submit']")
        page.wait_for_url(lambda url: "/ui/login" not in url)
        page.goto(f"/ui/sessions/{args.session}")
        page.wait_for_selector("[data-live-append]", state="attached")
        start = page.locator(ROWS).count()
        print("viewing", flush=True)
        end, errors = start, []
        page.on("pageerror", lambda e: errors.append(str(e)))
        started = time.monotonic()
        try:
            while True:
                page.wait_for_timeout(args.every * 1000)
                end = page.locator(ROWS).count()
        except Stop:
            pass
        print(
            json.dumps(
                {
                    "rows_at_start": start,
                    "rows_at_end": end,
                    "appended_live": end - start,
                    "seconds": round(time.monotonic() - started, 1),
                    "page_errors": errors[:5],
                }
            ),
            flush=True,
        )
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
