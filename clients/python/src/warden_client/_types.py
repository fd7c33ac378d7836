"""The decide API's answers, typed, and the client's exceptions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

Verdict = Literal["allow", "deny", "ask"]


@dataclass(frozen=True)
class Approval:
    """The human approval request an action waits on (or waited on)."""

    #: The request id (what an approver names in `warden approvals approve ID`).
    id: str
    #: `pending`, `granted`, `denied`, `timed_out` or `used`.
    status: str
    #: The request's deadline (RFC 3339, UTC).
    deadline: str
    #: The principals who may approve it (empty when the gateway did not say).
    approvers: tuple[str, ...] = ()
    #: How many distinct approvers it needs.
    quorum: int = 1

    @classmethod
    def from_json(cls, value: Any) -> Approval | None:
        if not isinstance(value, Mapping):
            return None
        approvers = value.get("approvers")
        quorum = value.get("quorum")
        return cls(
            id=str(value.get("id", "")),
            status=str(value.get("status", "")),
            deadline=str(value.get("deadline", "")),
            approvers=tuple(str(a) for a in approvers) if isinstance(approvers, list) else (),
            quorum=quorum if isinstance(quorum, int) and not isinstance(quorum, bool) else 1,
        )


@dataclass(frozen=True)
class Decision:
    """One answer of `POST /v1/decide`.

    Exactly one of `allowed`, `pending` and `denied` is true. An allowed action must be run
    with `arguments` (the arguments as decided) and its result reported with the `action` id.
    """

    #: `allow`, `ask` (waiting for approval) or `deny`.
    verdict: Verdict
    #: The action id (`None` only when the attempt could not be recorded).
    action: str | None
    #: Why it was not allowed: `approval_pending`, `denied`, `approval_denied`, … (`None` when
    #: allowed).
    refusal: str | None = None
    #: The gateway's sentence saying why (names the rule and its location).
    message: str | None = None
    #: The arguments as decided (allowed answers only).
    arguments: dict[str, Any] | None = None
    #: The approval request, when one is involved.
    approval: Approval | None = None
    #: The policy decision as the gateway made it (tier, verdict, reason, rules, posture, charter).
    detail: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def allowed(self) -> bool:
        return self.verdict == "allow"

    @property
    def pending(self) -> bool:
        return self.verdict == "ask"

    @property
    def denied(self) -> bool:
        return self.verdict == "deny"

    @classmethod
    def from_json(cls, body: Any) -> Decision:
        if not isinstance(body, Mapping) or body.get("verdict") not in ("allow", "deny", "ask"):
            raise WardenError(f"warden answered /v1/decide with an unexpected body: {_short(body)}")
        action = body.get("action")
        arguments = body.get("arguments")
        detail = body.get("decision")
        return cls(
            verdict=body["verdict"],
            action=action if isinstance(action, str) else None,
            refusal=body.get("refusal") if isinstance(body.get("refusal"), str) else None,
            message=body.get("message") if isinstance(body.get("message"), str) else None,
            arguments=dict(arguments) if isinstance(arguments, Mapping) else None,
            approval=Approval.from_json(body.get("approval")),
            detail=dict(detail) if isinstance(detail, Mapping) else None,
        )


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


class WardenError(Exception):
    """Anything that went wrong talking to warden. The token is never part of the message."""


class WardenUnavailable(WardenError):
    """warden could not be reached, did not answer in time, or could not serve the request
    (5xx). Nothing ran."""


class AuthenticationError(WardenError):
    """warden refused the credential: no token, an unknown or forged one (401
    `unauthenticated`), a revoked or expired session (401 `session_revoked`,
    `session_expired`), or an operator token on the agent plane (403 `wrong_plane`)."""

    def __init__(self, message: str, status: int, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class RequestRejected(WardenError):
    """warden refused the request itself (a 4xx other than authentication: a malformed body,
    a bad `wait`, an unknown action id for a result)."""

    def __init__(self, message: str, status: int, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class Refused(WardenError):
    """The action was not allowed: denied by the charter, by an approver, not approved in time,
    or (the subclass `ApprovalPending`) still waiting when the client stopped waiting. The
    governed function did not run."""

    def __init__(self, tool: str, decision: Decision) -> None:
        why = decision.message or decision.refusal or "refused"
        super().__init__(f"warden refused `{tool}` ({decision.refusal}): {why}")
        self.tool = tool
        self.decision = decision
        #: The refusal label (`denied`, `approval_denied`, `approval_timed_out`, …).
        self.reason = decision.refusal or "denied"
        #: The gateway's sentence.
        self.message = why


class ApprovalPending(Refused):
    """The action still waits for approval after the client's approval timeout: nothing ran,
    and the request stays open; the same call, retried, picks up the decision."""
