"""The OTLP receiver of the end-to-end tests (tests/e2e/otlp_receiver.py, on the official
protobuf definitions) as a benchmark's collector: it decodes and keeps every span, prints
`listening on URL` when ready and, at SIGTERM or SIGINT, `spans received: N` (the bench runs it
in the background, where SIGINT is ignored; hence SIGTERM).

Usage: .venv/bin/python bench/otlp_sink.py PORT
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
from otlp_receiver import OtlpReceiver  # noqa: E402


def main() -> int:
    port = int(sys.argv[1])
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    receiver = OtlpReceiver("127.0.0.1", port)
    print(f"listening on {receiver.url}", file=sys.stderr, flush=True)
    while not stop.wait(0.5):
        pass
    spans = receiver.snapshot()
    names: dict[str, int] = {}
    for s in spans:
        kind = s["name"].split(" ")[0]
        names[kind] = names.get(kind, 0) + 1
    print(f"spans received: {len(spans)} {names}", file=sys.stderr, flush=True)
    receiver.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
