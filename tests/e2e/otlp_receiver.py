"""A small OTLP/HTTP trace receiver built on the official protobuf definitions (the
`opentelemetry-proto` package): it decodes every `ExportTraceServiceRequest` POSTed to
`/v1/traces` and keeps the spans, as plain dicts, for tests and benchmarks to look at; and
every `ExportLogsServiceRequest` POSTed to `/v1/logs` (warden's `otlp_logs` export sink),
keeping the log records (`logs`).

Importable (`OtlpReceiver`, a context manager) or run on its own:

    python -m otlp_receiver --listen 127.0.0.1:4318      # from tests/e2e; one span per line

Modes, for the dead-collector tests: `ok` (answers 200), `status` (answers `status`, e.g. 503,
without keeping the spans) and `hang` (reads the request and never answers, until closed).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

#: The largest request body read (a batch of 512 spans with content stays well below).
MAX_BODY = 64 * 1024 * 1024


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in v.kvlist_value.values}
    if kind is None:
        return None
    return getattr(v, kind)


def _attrs(kvs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in kvs}


def decode(body: bytes) -> list[dict[str, Any]]:
    """The spans of one protobuf-encoded `ExportTraceServiceRequest`, as dicts."""
    req = ExportTraceServiceRequest()
    req.ParseFromString(body)
    spans = []
    for rs in req.resource_spans:
        resource = _attrs(rs.resource.attributes)
        for ss in rs.scope_spans:
            for s in ss.spans:
                spans.append(
                    {
                        "name": s.name,
                        "trace_id": s.trace_id.hex(),
                        "span_id": s.span_id.hex(),
                        "parent_span_id": s.parent_span_id.hex(),
                        "trace_state": s.trace_state,
                        "kind": s.kind,
                        "start": s.start_time_unix_nano,
                        "end": s.end_time_unix_nano,
                        "attributes": _attrs(s.attributes),
                        "events": [
                            {"name": e.name, "time": e.time_unix_nano, "attributes": _attrs(e.attributes)}
                            for e in s.events
                        ],
                        "status": {"code": s.status.code, "message": s.status.message},
                        "resource": resource,
                        "scope": ss.scope.name,
                    }
                )
    return spans


def decode_logs(body: bytes) -> list[dict[str, Any]]:
    """The log records of one protobuf-encoded `ExportLogsServiceRequest`, as dicts."""
    req = ExportLogsServiceRequest()
    req.ParseFromString(body)
    logs = []
    for rl in req.resource_logs:
        resource = _attrs(rl.resource.attributes)
        for sl in rl.scope_logs:
            for r in sl.log_records:
                logs.append(
                    {
                        "time": r.time_unix_nano,
                        "severity": r.severity_text,
                        "body": _value(r.body),
                        "attributes": _attrs(r.attributes),
                        "resource": resource,
                        "scope": sl.scope.name,
                    }
                )
    return logs


PATHS = ("/v1/traces", "/v1/logs")


class OtlpReceiver:
    """An OTLP/HTTP receiver on a loopback port (`url` is its base: `{url}/v1/traces`)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, mode: str = "ok", status: int = 503,
                 on_span: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.mode = mode
        self.status = status
        self.spans: list[dict[str, Any]] = []
        self.logs: list[dict[str, Any]] = []
        self.requests: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 — http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                if self.path not in PATHS or length > MAX_BODY:
                    self.send_error(404 if self.path not in PATHS else 413)
                    return
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.requests.append({k.lower(): v for k, v in self.headers.items()})
                if receiver.mode == "hang":
                    receiver._closing.wait()
                    return
                if receiver.mode == "status":
                    self.send_response(receiver.status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if self.headers.get("Content-Type") != "application/x-protobuf":
                    self.send_error(415)
                    return
                if self.path == "/v1/logs":
                    try:
                        logs = decode_logs(body)
                    except Exception:  # noqa: BLE001 — a bad body is a 400, whatever it is
                        self.send_error(400)
                        return
                    with receiver._lock:
                        receiver.logs.extend(logs)
                    self._answer(ExportLogsServiceResponse().SerializeToString())
                    return
                try:
                    spans = decode(body)
                except Exception:  # noqa: BLE001 — a bad body is a 400, whatever it is
                    self.send_error(400)
                    return
                with receiver._lock:
                    receiver.spans.extend(spans)
                for s in spans:
                    if on_span is not None:
                        on_span(s)
                self._answer(ExportTraceServiceResponse().SerializeToString())

            def _answer(self, out: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.spans)

    def snapshot_logs(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.logs)

    def wait_for(self, what: str, check: Callable[[list[dict[str, Any]]], Any], timeout: float = 20.0) -> Any:
        """`check(spans)` once it is truthy (polling), else an AssertionError naming `what`."""
        deadline = time.monotonic() + timeout
        while True:
            got = check(self.snapshot())
            if got:
                return got
            if time.monotonic() > deadline:
                names = [s["name"] for s in self.snapshot()]
                raise AssertionError(f"no {what} within {timeout}s; spans: {names}")
            time.sleep(0.05)

    def close(self) -> None:
        self._closing.set()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "OtlpReceiver":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", default="127.0.0.1:4318", help="host:port (port 0: any)")
    parser.add_argument("--mode", choices=["ok", "status", "hang"], default="ok")
    parser.add_argument("--status", type=int, default=503, help="the answer in `status` mode")
    parser.add_argument("--quiet", action="store_true", help="count spans, print nothing per span")
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")

    def show(span: dict[str, Any]) -> None:
        if not args.quiet:
            print(json.dumps(span), flush=True)

    receiver = OtlpReceiver(host or "127.0.0.1", int(port), args.mode, args.status, on_span=show)
    print(f"listening on {receiver.url}", file=sys.stderr, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        print(f"spans received: {len(receiver.snapshot())}", file=sys.stderr, flush=True)
        receiver.close()


if __name__ == "__main__":
    main()
