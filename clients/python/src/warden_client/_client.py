"""`Warden`: the decide API over HTTP, sync and async, and the `governed` decorator."""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping, TypeVar, cast

import httpx2

from ._types import (
    ApprovalPending,
    AuthenticationError,
    Decision,
    Refused,
    RequestRejected,
    WardenError,
    WardenUnavailable,
)

logger = logging.getLogger("warden_client")

F = TypeVar("F", bound=Callable[..., Any])

#: The longest one decide call waits for an approval (the gateway's limit).
MAX_WAIT = 300.0
#: How long one long poll waits for an approval before the client asks again (and reports
#: the status again).
DEFAULT_POLL = 30.0
#: How long the decorator waits for an approval, in all, by default.
DEFAULT_APPROVAL_TIMEOUT = 600.0
#: The longest the client ever waits for an approval.
MAX_APPROVAL_TIMEOUT = 24 * 3600.0
#: Connecting, sending, and any answer that is not a long poll.
DEFAULT_TIMEOUT = 10.0
#: The largest answer read from warden (a decide answer echoes the arguments).
MAX_ANSWER_BYTES = 16 * 1024 * 1024
#: The gateway records at most this much of an error.
MAX_ERROR_CHARS = 4096


@dataclass(frozen=True)
class WaitStatus:
    """What a call waiting for approval reports to its `on_status` callback."""

    tool: str
    decision: Decision
    #: Seconds waited so far.
    waited: float

    @property
    def message(self) -> str:
        a = self.decision.approval
        if a is None:
            return f"`{self.tool}` is waiting for approval"
        by = ", ".join(a.approvers) if a.approvers else "an approver"
        quorum = f" ({a.quorum} needed)" if a.quorum > 1 else ""
        return (
            f"waiting for approval {a.id} by {by}{quorum} for `{self.tool}` "
            f"(deadline {a.deadline}, waited {self.waited:.0f}s)…"
        )


StatusCallback = Callable[[WaitStatus], None]


def log_status(status: WaitStatus) -> None:
    """The default status callback: logs the status at INFO on the `warden_client` logger."""
    logger.info("%s", status.message)


class Warden:
    """A client of one warden gateway's agent plane, with one session token.

    `url` is the agent plane's base URL (`http://127.0.0.1:8700`); `token` the session token
    (`wa_…`). The token is sent only to `url` (redirects are not followed) and is never logged,
    shown in `repr` or put in an exception's message.
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        poll: float = DEFAULT_POLL,
        approval_timeout: float = DEFAULT_APPROVAL_TIMEOUT,
        on_status: StatusCallback | None = None,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError("warden's url must be an http:// or https:// URL")
        if url.rstrip("/").endswith("/mcp"):
            raise ValueError(
                "warden's url is the agent plane's base URL (`http://127.0.0.1:8700`), not its MCP endpoint"
            )
        if not isinstance(token, str) or not token or token != token.strip() or any(
            c.isspace() or ord(c) < 32 for c in token
        ):
            raise ValueError("the session token must be a non-empty string without whitespace")
        _check_seconds("timeout", timeout, 0.1, MAX_WAIT)
        _check_seconds("poll", poll, 1.0, MAX_WAIT)
        _check_seconds("approval_timeout", approval_timeout, 0.0, MAX_APPROVAL_TIMEOUT)
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self.timeout = timeout
        self.poll = poll
        self.approval_timeout = approval_timeout
        self.on_status: StatusCallback = on_status or log_status
        self._client: httpx2.Client | None = None

    @classmethod
    def from_env(cls, **kwargs: Any) -> Warden:
        """`WARDEN_URL` and `WARDEN_TOKEN` from the environment."""
        import os

        url, token = os.environ.get("WARDEN_URL"), os.environ.get("WARDEN_TOKEN")
        if not url or not token:
            raise WardenError("set WARDEN_URL (the agent plane) and WARDEN_TOKEN (a session token)")
        return cls(url, token, **kwargs)

    def __repr__(self) -> str:
        return f"Warden(url={self.url!r})"

    # -- life cycle ---------------------------------------------------------------------------

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> Warden:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _sync(self) -> httpx2.Client:
        if self._client is None:
            self._client = httpx2.Client(
                headers=self._headers, follow_redirects=False, trust_env=False
            )
        return self._client

    def _async(self) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(headers=self._headers, follow_redirects=False, trust_env=False)

    # -- the decide API -----------------------------------------------------------------------

    def decide(self, tool: str, arguments: Mapping[str, Any] | None = None, wait: float = 0) -> Decision:
        """`POST /v1/decide`: decides (and records) the action. With `wait` (seconds, at most
        300) an action that needs approval waits that long for the decision; the answer is then
        allowed, denied, or still pending (`Decision.pending`, with `approval`)."""
        body, timeout = self._decide_request(tool, arguments, wait)
        status, answer = self._send("POST", "/v1/decide", body, timeout)
        return self._decision(status, answer)

    async def adecide(
        self, tool: str, arguments: Mapping[str, Any] | None = None, wait: float = 0
    ) -> Decision:
        """`decide`, async."""
        body, timeout = self._decide_request(tool, arguments, wait)
        status, answer = await self._asend("POST", "/v1/decide", body, timeout)
        return self._decision(status, answer)

    def authorize(
        self,
        tool: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        approval_timeout: float | None = None,
        on_status: StatusCallback | None = None,
    ) -> Decision:
        """Decides the action and, when it needs approval, waits for the decision (reporting the
        status to `on_status` before each wait), for at most `approval_timeout` seconds.
        Returns the allowed decision; raises `Refused` when it is denied and `ApprovalPending`
        when it is still pending after `approval_timeout`."""
        budget = self._budget(approval_timeout)
        report = on_status or self.on_status
        started = time.monotonic()
        decision = self.decide(tool, arguments)
        while decision.pending:
            left = budget - (time.monotonic() - started)
            if left <= 0:
                raise ApprovalPending(tool, decision)
            report(WaitStatus(tool, decision, time.monotonic() - started))
            decision = self.decide(tool, arguments, wait=min(self.poll, left))
        if not decision.allowed:
            raise Refused(tool, decision)
        return decision

    async def aauthorize(
        self,
        tool: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        approval_timeout: float | None = None,
        on_status: StatusCallback | None = None,
    ) -> Decision:
        """`authorize`, async."""
        budget = self._budget(approval_timeout)
        report = on_status or self.on_status
        started = time.monotonic()
        decision = await self.adecide(tool, arguments)
        while decision.pending:
            left = budget - (time.monotonic() - started)
            if left <= 0:
                raise ApprovalPending(tool, decision)
            report(WaitStatus(tool, decision, time.monotonic() - started))
            decision = await self.adecide(tool, arguments, wait=min(self.poll, left))
        if not decision.allowed:
            raise Refused(tool, decision)
        return decision

    def report(
        self, action: str, status: str, output: Any = None, error: str | None = None
    ) -> dict[str, Any]:
        """`POST /v1/actions/{id}/result`: how an allowed action ended (`status` `ok` or
        `error`). Returns warden's answer (`recorded`, `labels_added`)."""
        path, body = self._report_request(action, status, output, error)
        code, answer = self._send("POST", path, body, self.timeout)
        return self._report_answer(code, answer)

    async def areport(
        self, action: str, status: str, output: Any = None, error: str | None = None
    ) -> dict[str, Any]:
        """`report`, async."""
        path, body = self._report_request(action, status, output, error)
        code, answer = await self._asend("POST", path, body, self.timeout)
        return self._report_answer(code, answer)

    # -- the decorator ------------------------------------------------------------------------

    def governed(
        self,
        tool: str,
        *,
        approval_timeout: float | None = None,
        on_status: StatusCallback | None = None,
    ) -> Callable[[F], F]:
        """Governs a function (sync or async) as the action `tool` (`server.tool`).

        Each call decides with the function's arguments (by parameter name; a first parameter
        `self` or `cls` is left out; `**kwargs` are merged in), waits for approval if needed
        (reporting the status), runs the function only when allowed — with the arguments as
        decided — and reports its result (`ok` with the return value, or `error` with the
        exception's text, which is then raised again). A refused call raises `Refused` (with
        the reason) and the function does not run. A failed report is logged, not raised: the
        function has run."""
        _check_tool(tool)

        def wrap(fn: F) -> F:
            sig = inspect.signature(fn)
            if inspect.iscoroutinefunction(fn):

                @functools.wraps(fn)
                async def agoverned(*args: Any, **kwargs: Any) -> Any:
                    bound, arguments = _arguments_of(sig, args, kwargs)
                    decision = await self.aauthorize(
                        tool, arguments, approval_timeout=approval_timeout, on_status=on_status
                    )
                    _rebind(bound, arguments, decision.arguments)
                    try:
                        result = await cast(Callable[..., Awaitable[Any]], fn)(
                            *bound.args, **bound.kwargs
                        )
                    except Exception as exc:
                        await self._areport_quietly(tool, decision, "error", None, _error_text(exc))
                        raise
                    await self._areport_quietly(tool, decision, "ok", result, None)
                    return result

                return cast(F, agoverned)

            @functools.wraps(fn)
            def governed_call(*args: Any, **kwargs: Any) -> Any:
                bound, arguments = _arguments_of(sig, args, kwargs)
                decision = self.authorize(
                    tool, arguments, approval_timeout=approval_timeout, on_status=on_status
                )
                _rebind(bound, arguments, decision.arguments)
                try:
                    result = fn(*bound.args, **bound.kwargs)
                except Exception as exc:
                    self._report_quietly(tool, decision, "error", None, _error_text(exc))
                    raise
                self._report_quietly(tool, decision, "ok", result, None)
                return result

            return cast(F, governed_call)

        return wrap

    # -- internals ----------------------------------------------------------------------------

    def _budget(self, approval_timeout: float | None) -> float:
        if approval_timeout is None:
            return self.approval_timeout
        _check_seconds("approval_timeout", approval_timeout, 0.0, MAX_APPROVAL_TIMEOUT)
        return approval_timeout

    def _decide_request(
        self, tool: str, arguments: Mapping[str, Any] | None, wait: float
    ) -> tuple[bytes, float]:
        _check_tool(tool)
        _check_seconds("wait", wait, 0.0, MAX_WAIT)
        body: dict[str, Any] = {"tool": tool, "arguments": dict(arguments or {})}
        seconds = math.ceil(wait)
        if seconds > 0:
            body["wait"] = f"{seconds}s"
        # The answer of a long poll comes after up to `wait` seconds.
        return _json_bytes(body, f"the arguments of `{tool}`"), self.timeout + seconds

    def _decision(self, status: int, answer: Any) -> Decision:
        if status in (200, 202):
            return Decision.from_json(answer)
        raise self._error(status, answer, "/v1/decide")

    def _report_request(
        self, action: str, status: str, output: Any, error: str | None
    ) -> tuple[str, bytes]:
        if status not in ("ok", "error"):
            raise ValueError("a result's status is `ok` or `error`")
        if not isinstance(action, str) or not action or "/" in action or "?" in action:
            raise ValueError("an action id is the `action` of an allowed decision")
        body: dict[str, Any] = {"status": status}
        if output is not None:
            body["output"] = _jsonable(output)
        if error is not None:
            body["error"] = str(error)[:MAX_ERROR_CHARS]
        return f"/v1/actions/{action}/result", _json_bytes(body, "the result")

    def _report_answer(self, status: int, answer: Any) -> dict[str, Any]:
        if status == 200 and isinstance(answer, dict):
            return answer
        raise self._error(status, answer, "the result report")

    def _report_quietly(
        self, tool: str, decision: Decision, status: str, output: Any, error: str | None
    ) -> None:
        if decision.action is None:
            return
        try:
            self.report(decision.action, status, output, error)
        except (WardenError, ValueError) as e:
            logger.warning("the result of `%s` (action %s) was not recorded: %s", tool, decision.action, e)

    async def _areport_quietly(
        self, tool: str, decision: Decision, status: str, output: Any, error: str | None
    ) -> None:
        if decision.action is None:
            return
        try:
            await self.areport(decision.action, status, output, error)
        except (WardenError, ValueError) as e:
            logger.warning("the result of `%s` (action %s) was not recorded: %s", tool, decision.action, e)

    def _send(self, method: str, path: str, body: bytes, timeout: float) -> tuple[int, Any]:
        request = self._sync().build_request(
            method,
            self.url + path,
            content=body,
            headers={"Content-Type": "application/json"},
            timeout=httpx2.Timeout(self.timeout, read=timeout),
        )
        deadline = time.monotonic() + timeout + self.timeout
        try:
            response = self._sync().send(request, stream=True)
            try:
                data = bytearray()
                for chunk in response.iter_bytes():
                    data += chunk
                    if len(data) > MAX_ANSWER_BYTES:
                        raise WardenError(f"warden's answer to {path} is over {MAX_ANSWER_BYTES} bytes")
                    if time.monotonic() > deadline:
                        raise WardenUnavailable(f"warden's answer to {path} took too long")
            finally:
                response.close()
        except httpx2.TimeoutException as e:
            raise WardenUnavailable(
                f"warden at {self.url} did not answer {path} within {timeout:.0f}s ({type(e).__name__})"
            ) from None
        except httpx2.HTTPError as e:
            raise WardenUnavailable(f"cannot reach warden at {self.url}: {_cause(e)}") from None
        return response.status_code, _parse(bytes(data))

    async def _asend(self, method: str, path: str, body: bytes, timeout: float) -> tuple[int, Any]:
        async def go() -> tuple[int, Any]:
            async with self._async() as client:
                request = client.build_request(
                    method,
                    self.url + path,
                    content=body,
                    headers={"Content-Type": "application/json"},
                    timeout=httpx2.Timeout(self.timeout, read=timeout),
                )
                response = await client.send(request, stream=True)
                try:
                    data = bytearray()
                    async for chunk in response.aiter_bytes():
                        data += chunk
                        if len(data) > MAX_ANSWER_BYTES:
                            raise WardenError(
                                f"warden's answer to {path} is over {MAX_ANSWER_BYTES} bytes"
                            )
                finally:
                    await response.aclose()
                return response.status_code, _parse(bytes(data))

        try:
            return await asyncio.wait_for(go(), timeout + self.timeout)
        except (httpx2.TimeoutException, asyncio.TimeoutError) as e:
            raise WardenUnavailable(
                f"warden at {self.url} did not answer {path} within {timeout:.0f}s ({type(e).__name__})"
            ) from None
        except httpx2.HTTPError as e:
            raise WardenUnavailable(f"cannot reach warden at {self.url}: {_cause(e)}") from None

    def _error(self, status: int, answer: Any, what: str) -> WardenError:
        code, message = "", ""
        if isinstance(answer, dict):
            err = answer.get("error")
            if isinstance(err, dict):
                code, message = str(err.get("code", "")), str(err.get("message", ""))
        detail = f"{status} {code}: {message}" if code else f"HTTP {status}"
        if status in (401, 403):
            return AuthenticationError(
                f"warden at {self.url} refused the session token ({detail}); "
                "open a session with `warden session open` and use its token",
                status,
                code,
            )
        if status >= 500:
            return WardenUnavailable(f"warden at {self.url} could not serve {what} ({detail})")
        return RequestRejected(f"warden refused {what} ({detail})", status, code)


def _check_seconds(name: str, value: float, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (low <= value <= high):
        raise ValueError(f"`{name}` must be a number of seconds from {low:g} to {high:g}")


def _check_tool(tool: str) -> None:
    if not isinstance(tool, str) or "." not in tool.strip(".") or len(tool) > 512:
        raise ValueError(f"a tool is named `server.tool`, not {tool!r}")


def _json_bytes(value: Any, what: str) -> bytes:
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":")).encode()
    except (TypeError, ValueError) as e:
        raise TypeError(f"{what} must be JSON (objects, lists, strings, numbers, booleans): {e}") from None


def _jsonable(value: Any) -> Any:
    """The value if it is JSON, else its text."""
    try:
        json.dumps(value, allow_nan=False)
        return value
    except (TypeError, ValueError):
        return str(value)


def _parse(data: bytes) -> Any:
    try:
        return json.loads(data) if data else None
    except ValueError:
        return None


def _cause(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return text[:300]


def _error_text(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _arguments_of(
    sig: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[inspect.BoundArguments, dict[str, Any]]:
    """The call's arguments by parameter name (defaults applied), as decided."""
    bound = sig.bind(*args, **kwargs)
    bound.apply_defaults()
    params = list(sig.parameters.values())
    skip = params[0].name if params and params[0].name in ("self", "cls") else None
    out: dict[str, Any] = {}
    for p in params:
        if p.name == skip:
            continue
        value = bound.arguments.get(p.name)
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            out.update(value or {})
        elif p.kind is inspect.Parameter.VAR_POSITIONAL:
            out[p.name] = list(value or ())
        else:
            out[p.name] = value
    return bound, out


def _rebind(bound: inspect.BoundArguments, sent: dict[str, Any], decided: dict[str, Any] | None) -> None:
    """Runs the function with the arguments as decided: a value the gateway changed (a path with
    its symbolic links resolved) replaces the one sent. Fails closed when they cannot be mapped
    back."""
    if decided is None:
        return
    normal = json.loads(_json_bytes(sent, "the arguments"))
    if decided == normal:
        return
    if set(decided) != set(normal):
        raise WardenError("warden allowed arguments other than those sent; the function was not run")
    varkw = next(
        (p.name for p in bound.signature.parameters.values() if p.kind is inspect.Parameter.VAR_KEYWORD),
        None,
    )
    for name, value in decided.items():
        if normal.get(name) == value:
            continue
        if name in bound.signature.parameters and name not in (varkw,):
            bound.arguments[name] = value
        elif varkw is not None:
            bound.arguments[varkw][name] = value
        else:
            raise WardenError("warden allowed arguments other than those sent; the function was not run")
