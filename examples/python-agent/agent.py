"""A plain Python agent governed by warden through the decide API.

Two tools, both plain functions of the agent's own, each behind `@warden.governed`:
`crm.lookup_customer` runs at once (autonomous in charter.yaml); `mail.send_email` waits until
someone with the authority approves it (bob, the support lead), then runs. Every call is
decided and recorded before it runs, and its result is recorded after.

    WARDEN_URL=http://127.0.0.1:8700 WARDEN_TOKEN=wa_… python examples/python-agent/agent.py

Needs the client: `pip install ./clients/python`.
"""

from __future__ import annotations

import logging
import sys

from warden_client import Refused, Warden, WardenError

CUSTOMERS = {
    "c-1001": {"name": "Ada Lovelace", "email": "ada@example.com", "open_ticket": "T-77"},
}

warden = Warden.from_env()
outbox: list[dict[str, str]] = []


@warden.governed("crm.lookup_customer")
def lookup_customer(customer_id: str) -> dict[str, str]:
    """Reads a customer record (autonomous)."""
    record = CUSTOMERS.get(customer_id)
    if record is None:
        raise KeyError(f"no customer {customer_id}")
    return record


@warden.governed("mail.send_email")
def send_email(to: str, subject: str, body: str) -> str:
    """Sends a mail (needs a human's approval)."""
    outbox.append({"to": to, "subject": subject, "body": body})
    return f"queued mail {len(outbox)} to {to}"


def main() -> int:
    # The client reports "waiting for approval <id> by <approvers>…" on this logger.
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stdout)
    logging.getLogger("httpx2").setLevel(logging.WARNING)  # one line per request otherwise
    try:
        customer = lookup_customer("c-1001")
        print(f"looked up {customer['name']} (ticket {customer['open_ticket']})", flush=True)
        sent = send_email(
            to=customer["email"],
            subject=f"Your ticket {customer['open_ticket']}",
            body=f"Dear {customer['name']}, your ticket is resolved.",
        )
        print(sent, flush=True)
    except Refused as e:
        print(f"refused: {e.reason}: {e.message}", flush=True)
        return 2
    except WardenError as e:
        print(f"error: {e}", flush=True)
        return 1
    finally:
        warden.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
