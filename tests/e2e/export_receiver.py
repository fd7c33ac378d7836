"""A small HTTP receiver for warden's `http` export sink: it takes the batches POSTed as JSON
(`{"ledger": <id>, "records": [<record>, ...]}`) and keeps the records in the order received,
for tests and benchmarks to look at.

Importable (`ExportReceiver`, a context manager) or run on its own:

    python -m export_receiver --listen 127.0.0.1:8900     # from tests/e2e; counts records

Options for the tests: `delay` (seconds each request waits before it is answered: a slow
sink) and `status` (answer that status without keeping anything: a refusing sink).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

#: The largest request body read (a batch is at most 4 MiB of records, and the envelope).
MAX_BODY = 8 * 1024 * 1024


class ExportReceiver:
    """An export receiver on a loopback port; batches go to `{url}/ingest`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, delay: float = 0.0) -> None:
        self.delay = delay
        self.status: int | None = None
        self.records: list[dict[str, Any]] = []
        self.requests: list[dict[str, str]] = []
        self.ledgers: set[str] = set()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 — http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                if self.path != "/ingest" or length > MAX_BODY:
                    self.send_error(404 if self.path != "/ingest" else 413)
                    return
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.requests.append({k.lower(): v for k, v in self.headers.items()})
                if receiver.delay:
                    time.sleep(receiver.delay)
                if receiver.status is not None:
                    self._answer(receiver.status)
                    return
                if self.headers.get("Content-Type") != "application/json":
                    self._answer(415)
                    return
                try:
                    batch = json.loads(body)
                    records = batch["records"]
                    assert isinstance(records, list)
                except Exception:  # noqa: BLE001 — a bad body is a 400, whatever it is
                    self._answer(400)
                    return
                with receiver._lock:
                    receiver.ledgers.add(batch.get("ledger"))
                    receiver.records.extend(records)
                self._answer(200)

            def _answer(self, code: int) -> None:
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/ingest"

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.records)

    def wait_for(self, what: str, check: Callable[[list[dict[str, Any]]], Any], timeout: float = 30.0) -> Any:
        """`check(records)` once it is truthy (polling), else an AssertionError naming `what`."""
        deadline = time.monotonic() + timeout
        while True:
            got = check(self.snapshot())
            if got:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {timeout}s; {len(self.snapshot())} records")
            time.sleep(0.05)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "ExportReceiver":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", default="127.0.0.1:8900", help="host:port (port 0: any)")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    receiver = ExportReceiver(host or "127.0.0.1", int(port), args.delay)
    print(f"listening on {receiver.url}", file=sys.stderr, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        print(f"records received: {len(receiver.snapshot())}", file=sys.stderr, flush=True)
        receiver.close()


if __name__ == "__main__":
    main()
