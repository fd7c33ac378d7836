"""A Python client for warden's decide API.

```python
from warden_client import Warden, Refused

warden = Warden("http://127.0.0.1:8700", token)

@warden.governed("payments.create_payment")
def create_payment(amount: float, to: str) -> str: ...
```
"""

from ._client import (
    DEFAULT_APPROVAL_TIMEOUT,
    DEFAULT_POLL,
    DEFAULT_TIMEOUT,
    MAX_WAIT,
    StatusCallback,
    WaitStatus,
    Warden,
    log_status,
)
from ._types import (
    Approval,
    ApprovalPending,
    AuthenticationError,
    Decision,
    Refused,
    RequestRejected,
    Verdict,
    WardenError,
    WardenUnavailable,
)

__all__ = [
    "DEFAULT_APPROVAL_TIMEOUT",
    "DEFAULT_POLL",
    "DEFAULT_TIMEOUT",
    "MAX_WAIT",
    "Approval",
    "ApprovalPending",
    "AuthenticationError",
    "Decision",
    "Refused",
    "RequestRejected",
    "StatusCallback",
    "Verdict",
    "WaitStatus",
    "Warden",
    "WardenError",
    "WardenUnavailable",
    "log_status",
]
