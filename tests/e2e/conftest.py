"""Fixtures for warden's end-to-end tests: a real `warden serve` in front of the real npm MCP
servers, driven by the real Python MCP SDK.

Nothing here builds anything. The binary is `$WARDEN_BIN` (default `target/debug/warden`),
the MCP servers come from `node_modules` (installed by `scripts/test.sh` with `npm ci`), and
the Python packages from `.venv` (`requirements-test.txt`).

Every gateway runs on its own data directory and two free loopback ports, and is stopped with
SIGTERM at the end of its test; a gateway that does not exit 0 fails the test.

The store is SQLite (the data directory) unless `WARDEN_E2E_STORE=postgres`: then every gateway
started gets a fresh database of its own in the PostgreSQL cluster at `WARDEN_TEST_PG_URL`
(made with `psql`; `scripts/test.sh` starts the cluster) and `--store URL`, and the ledger is
read and verified with `--store URL --instance ID`. A test that reads or breaks the SQLite files
themselves is marked `sqlite_only` and skipped there (saying so).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any, AsyncIterator, Callable, Iterable, Iterator

import httpx2
import pytest
from mcp import ClientSession, MCPError, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

REPO = Path(__file__).resolve().parents[2]


def _repo_path(value: str) -> Path:
    p = Path(value)
    return p if p.is_absolute() else REPO / p


WARDEN_BIN = _repo_path(os.environ.get("WARDEN_BIN") or "target/debug/warden")
NODE_MODULES = REPO / "node_modules"
FS_SERVER = NODE_MODULES / "@modelcontextprotocol/server-filesystem/dist/index.js"
EVERYTHING_SERVER = NODE_MODULES / "@modelcontextprotocol/server-everything/dist/index.js"

#: The agent id of every test charter.
AGENT = "e2e-agent"
#: The principal sessions are opened for.
USER = "alice"
#: What a refusal by warden starts with (`Governor::authorize`).
REFUSED = "warden refused"
#: Content of the file outside the allowed root; no result may ever contain it.
OUTSIDE_SECRET = "OUTSIDE-THE-ROOT-do-not-leak"
SECRET_TEXT = "launch code: confidential-7f3a"

#: How long a gateway may take to answer `/healthz` after it was started.
START_TIMEOUT = 45.0
#: How long a gateway may take to exit after SIGTERM.
STOP_TIMEOUT = 30.0

#: The store the suite's gateways use: `sqlite` (default) or `postgres`.
STORE = os.environ.get("WARDEN_E2E_STORE", "sqlite").strip().lower() or "sqlite"
#: The cluster a PostgreSQL run makes its databases in (`postgres://user@host:port`).
PG_BASE = os.environ.get("WARDEN_TEST_PG_URL", "").rstrip("/")
#: The store URL of each gateway's data directory (PostgreSQL runs only).
_STORES: dict[Path, str] = {}


def pytest_sessionstart(session: pytest.Session) -> None:
    """Refuse to run (fail, never skip) when the peers are not installed."""
    if STORE not in ("sqlite", "postgres"):
        raise pytest.UsageError(f"WARDEN_E2E_STORE must be `sqlite` or `postgres`, not `{STORE}`")
    if STORE == "postgres" and not PG_BASE:
        raise pytest.UsageError(
            "WARDEN_E2E_STORE=postgres needs a running cluster at WARDEN_TEST_PG_URL "
            "(`postgres://user@host:port`; scripts/test.sh starts one)"
        )
    missing = [str(p) for p in (WARDEN_BIN, FS_SERVER, EVERYTHING_SERVER) if not p.exists()]
    try:
        import warden_client  # noqa: F401 — clients/python, installed by scripts/test.sh
    except ImportError:
        missing.append("the Python client `warden_client` (`pip install ./clients/python`)")
    if missing:
        raise pytest.UsageError(
            "warden's end-to-end tests need: "
            + ", ".join(missing)
            + ". Build warden (`cargo build -p warden`, or set WARDEN_BIN) and install the "
            "test peers with `scripts/test.sh` (it runs `npm ci` and creates .venv)."
        )


# --------------------------------------------------------------------------------------------
# The test charter
# --------------------------------------------------------------------------------------------

#: The charter every test runs with. `$root` is the allowed folder; the filesystem server is
#: started on `$base`, its parent, which also holds `$base/outside`: so the server itself would
#: happily read and write outside `$root`, and only warden's decisions stand in the way — the
#: kernel confinement is off for it (`sandbox: { mode: off }`: confined to `$root`, a server
#: started on `$base` cannot even walk down from `$base` to create a file; the confinement is
#: tested in crates/warden-gateway/tests/integration/gateway/sandbox.rs). `$models` is more of the
#: inventory (`models`, `token_budgets`; YAML indented by two spaces), empty by default.
CHARTER = Template(
    """\
version: 1

identity:
  id: e2e-agent
  name: End-to-end test agent
  purpose: Exercise warden against the real MCP reference servers.
  serves: The warden test suite
  boundaries:
    - Stays inside the demo folder.

inventory:
  servers:
    - id: fs
      command: [node, "$fs_server", "$base"]
      sandbox: { mode: off }
      tools:
        - read_text_file
        - read_file
        - read_media_file
        - read_multiple_files
        - write_file
        - edit_file
        - create_directory
        - list_directory
        - list_directory_with_sizes
        - directory_tree
        - move_file
        - search_files
        - get_file_info
        - list_allowed_directories
    - id: everything
      command: [node, "$everything_server", stdio]
      tools: [echo, get-sum, get-env, trigger-long-running-operation]
    - id: pay
      description: No transport; the agent calls it itself after the decide API allows it.
      tools: [create_payment, refund]
$models
actions:
  default_posture: deny
  approval: { timeout: 2s }
  rules:
    - id: read-root
      tool: [fs.read_text_file, fs.read_file, fs.list_directory, fs.get_file_info]
      tier: autonomous
      args: { path: { glob: ["$root", "$root/**"] } }
    - id: read-many-root
      tool: fs.read_multiple_files
      tier: autonomous
      args: { paths: { glob: "$root/**" } }
    - id: write-notes
      tool: fs.write_file
      tier: autonomous
      args: { path: { glob: "$root/notes/**" } }
    - id: mkdir-needs-approval
      tool: fs.create_directory
      tier: approval
      approval: { timeout: $approval_timeout }
      args: { path: { glob: "$root/**" } }
    - id: no-writes-outside-notes
      tool: [fs.write_file, fs.edit_file]
      tier: prohibited
      args: { path: { not: { glob: "$root/notes/**" } } }
    - id: outside-root
      tool: "fs.*"
      tier: prohibited
      args: { path: { not: { glob: ["$root", "$root/**"] } } }
    - id: outside-root-lists
      tool: fs.read_multiple_files
      tier: prohibited
      args: { paths: { not: { glob: "$root/**" } } }
    - id: never-move
      tool: fs.move_file
      tier: prohibited
    - id: no-copies-of-secrets
      description: After a confidential read, nothing is written outside secret/.
      tool: [fs.write_file, fs.edit_file]
      tier: prohibited
      labels: { any: [confidential] }
      args: { path: { not: { glob: "$root/secret/**" } } }
    - id: echo
      tool: [everything.echo, everything.get-sum, everything.trigger-long-running-operation]
      tier: autonomous
    - id: never-env
      tool: everything.get-env
      tier: prohibited
    - id: read-static-docs
      description: Resource reads are decided as the tool `server.resources/read`.
      tool: everything.resources/read
      tier: autonomous
      args: { uri: { regex: 'demo://resource/static/document/(architecture|features)\\.md' } }
    - id: small-payments
      tool: pay.create_payment
      tier: autonomous
      args: { amount: { min: 0.01, max: 100 } }
    - id: large-payments
      tool: pay.create_payment
      tier: prohibited
      args: { amount: { not: { max: 100 } } }
    - id: refunds
      description: Two refunds a session, three a day; beyond that a human decides.
      tool: pay.refund
      tier: preapproved
      scope: { per_session: 2, per_day: 3 }
      approval: { timeout: 1s }

authority:
  separation_of_duties: true
  roles:
    - { id: engineer, approve: [default, mkdir-needs-approval, refunds] }
  principals:
    - { id: alice, name: Alice, roles: [engineer] }
    - { id: bob, name: Bob, roles: [engineer] }

data:
  labels:
    - { id: confidential, description: Anything under secret/. }
  sources:
    - { label: confidential, tool: "fs.*", path: "$root/secret/**" }

context:
  organisation: warden tests
  environment: test
"""
)


@dataclass
class Workspace:
    """The folders a gateway's filesystem server sees."""

    base: Path
    root: Path
    outside: Path

    @classmethod
    def create(cls, parent: Path) -> "Workspace":
        base = Path(os.path.realpath(parent)) / "ws"
        root = base / "demo"
        outside = base / "outside"
        for d in (root / "notes", root / "docs", root / "secret", outside):
            d.mkdir(parents=True, exist_ok=True)
        (root / "README.md").write_text("# Demo folder\n\nwarden e2e.\n")
        (root / "docs" / "plan.md").write_text("# Plan\n\n1. Test warden.\n")
        (root / "secret" / "plan.txt").write_text(SECRET_TEXT + "\n")
        (outside / "secret.txt").write_text(OUTSIDE_SECRET + "\n")
        return cls(base=base, root=root, outside=outside)


def charter_text(ws: Workspace, approval_timeout: str = "2s", models: str = "") -> str:
    return CHARTER.substitute(
        fs_server=FS_SERVER,
        everything_server=EVERYTHING_SERVER,
        base=ws.base,
        root=ws.root,
        approval_timeout=approval_timeout,
        models=models,
    )


# --------------------------------------------------------------------------------------------
# The gateway process
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_warden(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
    return subprocess.run(
        [str(WARDEN_BIN), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=REPO,
    )


def _psql() -> str:
    """Debian's psql (the newest installed), or the one on PATH."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/psql"), key=lambda p: int(p.parts[-3]))
    return str(found[-1]) if found else "psql"


_DB_COUNT = iter(range(1_000_000))
#: The databases this run made and has not dropped yet.
_DATABASES: list[str] = []


#: The run's template database, migrated once by `warden migrate` (None until the first
#: database is made).
_TEMPLATE: str | None = None


def _create_database(name: str, template: str | None) -> None:
    sql = f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else "")
    out = subprocess.run(
        [_psql(), f"{PG_BASE}/postgres", "-v", "ON_ERROR_STOP=1", "-q", "-c", sql],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, f"cannot create the database {name}: {out.stderr}"


def new_postgres_database() -> str:
    """Makes a database in the cluster at `WARDEN_TEST_PG_URL` that holds warden's schema and
    nothing else; its URL. The schema comes from a template this run migrated once with
    `warden migrate` (a copy costs a file copy; migrating each gateway's database at its
    start cost about a second each). It is dropped when the test module that made it ends
    (`_drop_databases`); the template when the run ends."""
    global _TEMPLATE
    if _TEMPLATE is None:
        template = f"warden_e2e_{os.getpid()}_template"
        _create_database(template, None)
        _TEMPLATE = template
        migrated = run_warden("migrate", "--store", f"{PG_BASE}/{template}")
        assert migrated.returncode == 0, f"warden migrate failed: {migrated.stderr}"
    name = f"warden_e2e_{os.getpid()}_{next(_DB_COUNT)}"
    _DATABASES.append(name)
    _create_database(name, _TEMPLATE)
    return f"{PG_BASE}/{name}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Drops the run's template database (the others went with their modules)."""
    if _TEMPLATE is not None:
        subprocess.run(
            [_psql(), f"{PG_BASE}/postgres", "-q", "-c", f"DROP DATABASE IF EXISTS {_TEMPLATE} WITH (FORCE)"],
            capture_output=True,
            text=True,
            timeout=60,
        )


def store_args(data: Path) -> list[str]:
    """What a `warden` command that reads the store of the gateway on `data` needs besides
    `--data DIR`: nothing on SQLite; `--store URL` on PostgreSQL."""
    store = _STORES.get(data)
    return ["--store", store] if store else []


def ledger_args(data: Path) -> list[str]:
    """How a `warden audit` command names the ledger of the gateway on `data`: `--data DIR`
    on SQLite; `--store URL --instance ID` (the id kept in `DIR/instance`) on PostgreSQL."""
    store = _STORES.get(data)
    if not store:
        return ["--data", str(data)]
    instance = (data / "instance").read_text().strip()
    return ["--store", store, "--instance", instance]


def psql(url: str, sql: str) -> str:
    """Runs `sql` on the database at `url`; its output (unaligned, tuples only)."""
    out = subprocess.run(
        [_psql(), url, "-v", "ON_ERROR_STOP=1", "-q", "-A", "-t", "-c", sql],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, f"psql failed: {out.stderr}"
    return out.stdout


def tamper_record(
    data: Path, seq: int, edit: bool, replace: tuple[str, str] = ('"verdict":"deny"', '"verdict":"allow"')
) -> int:
    """Changes record `seq` of the ledger of the gateway on `data` behind warden's back (in
    its payload the text `replace[0]` made `replace[1]`; by default its `"verdict":"deny"`
    made `"allow"`), or deletes it; how many rows changed. On SQLite in `DIR/ledger.db`; on
    PostgreSQL in the instance's chain in `ledger_records`."""
    old, new = replace
    store = _STORES.get(data)
    if store is None:
        db = sqlite3.connect(data / "ledger.db")
        with db:
            if edit:
                (payload,) = db.execute("SELECT payload FROM records WHERE seq = ?", (seq,)).fetchone()
                forged = payload.replace(old, new)
                assert forged != payload
                n = db.execute("UPDATE records SET payload = ? WHERE seq = ?", (forged, seq)).rowcount
            else:
                n = db.execute("DELETE FROM records WHERE seq = ?", (seq,)).rowcount
        db.close()
        return n
    instance = (data / "instance").read_text().strip().replace("'", "''")
    where = f"WHERE instance = '{instance}' AND seq = {int(seq)}"
    if edit:
        o, n = (t.replace("'", "''") for t in (old, new))
        sql = (
            f"UPDATE ledger_records SET payload = replace(payload, '{o}', '{n}') {where} "
            f"AND strpos(payload, '{o}') > 0 RETURNING seq"
        )
    else:
        sql = f"DELETE FROM ledger_records {where} RETURNING seq"
    return len([line for line in psql(store, sql).splitlines() if line.strip()])


def ledger_snapshot(data: Path) -> bytes:
    """Everything the ledger of the gateway on `data` holds, to compare before and after a
    command that must only read it: on SQLite the bytes of `DIR/ledger.db`; on PostgreSQL the
    instance's records, its committed mark and its Merkle subtrees, as rows."""
    store = _STORES.get(data)
    if store is None:
        return (data / "ledger.db").read_bytes()
    instance = (data / "instance").read_text().strip().replace("'", "''")
    return psql(
        store,
        f"SELECT 'r', seq, time, session, kind, payload, prev_hash, hash FROM ledger_records "
        f"WHERE instance = '{instance}' ORDER BY seq; "
        f"SELECT 'm', ledger_id, created_at, mark FROM ledger_instances "
        f"WHERE instance = '{instance}'; "
        f"SELECT 't', level, idx, hash FROM ledger_tree_nodes "
        f"WHERE instance = '{instance}' ORDER BY level, idx",
    ).encode()


sqlite_only = pytest.mark.skipif(
    STORE != "sqlite", reason="reads or changes the SQLite files in the data directory"
)


@dataclass
class Gateway:
    """One `warden serve` process."""

    tmp: Path
    ws: Workspace
    extra_args: list[str] = field(default_factory=list)
    approval_timeout: str = "2s"
    #: More of the charter's inventory (see `CHARTER`).
    models: str = ""
    #: Environment variables set for the gateway (after the caller's `WARDEN_*` are removed).
    env: dict[str, str] = field(default_factory=dict)
    #: A charter of the test's own, instead of `CHARTER`.
    charter_override: str | None = None
    data: Path = field(init=False)
    charter: Path = field(init=False)
    agent_port: int = field(init=False)
    operator_port: int = field(init=False)
    proc: subprocess.Popen[bytes] | None = field(init=False, default=None)
    exit_code: int | None = field(init=False, default=None)
    _copier: threading.Thread = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.data = self.tmp / "data"
        #: The PostgreSQL store of this gateway (a database of its own), or None (SQLite).
        self.store: str | None = None
        if STORE == "postgres":
            self.store = new_postgres_database()
            _STORES[self.data] = self.store
        # Set by a test that breaks the ledger on purpose; otherwise the fixture checks, after
        # the gateway stopped, that `warden audit verify` passes on what it wrote.
        self.tampered = False
        self.charter = self.tmp / "charter.yaml"
        self.charter.write_text(
            self.charter_override
            if self.charter_override is not None
            else charter_text(self.ws, self.approval_timeout, self.models)
        )
        self.log_path = self.tmp / "warden.log"

    # -- addresses and credentials ----------------------------------------------------------

    @property
    def agent_url(self) -> str:
        return f"http://127.0.0.1:{self.agent_port}"

    @property
    def operator_url(self) -> str:
        return f"http://127.0.0.1:{self.operator_port}"

    @property
    def mcp_url(self) -> str:
        return f"{self.agent_url}/mcp"

    @property
    def operator_token(self) -> str:
        return (self.data / "operator.token").read_text().strip()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> "Gateway":
        last_error = ""
        for _attempt in range(3):  # a port taken between free_port() and bind: try again
            self.agent_port, self.operator_port = free_port(), free_port()
            if self.agent_port == self.operator_port:
                continue
            # The log goes through a pipe, not straight into a file, so that a file-size limit
            # set on the gateway (the full-disk test) does not hit its logging.
            self.proc = subprocess.Popen(
                [
                    str(WARDEN_BIN),
                    "serve",
                    "--charter",
                    str(self.charter),
                    "--data",
                    str(self.data),
                    "--agent-listen",
                    f"127.0.0.1:{self.agent_port}",
                    "--operator-listen",
                    f"127.0.0.1:{self.operator_port}",
                    "--shutdown-grace",
                    "5s",
                    *(["--store", self.store] if self.store else []),
                    *self.extra_args,
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=REPO,
                env={
                    **{k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")},
                    "NO_COLOR": "1",
                    **self.env,
                },
                preexec_fn=_ignore_sigxfsz,
            )
            self._copier = threading.Thread(
                target=_copy_to, args=(self.proc.stdout, self.log_path), daemon=True
            )
            self._copier.start()
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    self._copier.join(timeout=5)
                    last_error = f"warden serve exited {self.proc.returncode}:\n{self.log()}"
                    break
                try:
                    r = httpx2.get(f"{self.agent_url}/healthz", timeout=2)
                    if r.status_code == 200 and r.json() == {"status": "ok"}:
                        return self
                except httpx2.HTTPError:
                    pass
                time.sleep(0.1)
            else:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(
                    f"warden serve did not answer /healthz within {START_TIMEOUT}s:\n{self.log()}"
                )
            if "cannot bind" not in last_error:
                break
        raise AssertionError(last_error)

    def stop(self) -> int:
        """SIGTERM, then wait; returns the exit code (idempotent)."""
        if self.proc is None:
            return 0
        if self.exit_code is None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.exit_code = self.proc.wait(timeout=STOP_TIMEOUT)
                self._copier.join(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(
                    f"warden serve did not exit within {STOP_TIMEOUT}s of SIGTERM:\n{self.log()}"
                ) from None
        return self.exit_code

    def restart(self) -> "Gateway":
        """Stops the gateway (checking it exits 0) and starts it again on the same data
        directory and charter, on new ports."""
        code = self.stop()
        assert code == 0, f"warden serve exited {code} after SIGTERM:\n{self.log()}"
        self.proc, self.exit_code = None, None
        return self.start()

    # -- sessions ---------------------------------------------------------------------------

    def open_session(
        self, user: str = USER, agent: str = AGENT, ttl: str | None = None, task: str = "end-to-end test"
    ) -> str:
        args = [
            "session",
            "open",
            "--agent",
            agent,
            "--user",
            user,
            "--task",
            task,
            "--operator-url",
            self.operator_url,
            "--token",
            self.operator_token,
        ]
        if ttl:
            args += ["--ttl", ttl]
        out = run_warden(*args)
        assert out.returncode == 0, f"session open failed: {out.stderr}"
        token = out.stdout.strip()
        assert token.startswith("wa_"), token
        return token

    # -- the ledger -------------------------------------------------------------------------

    def records(self) -> list[dict[str, Any]]:
        """The ledger's records. An action's result is queued and committed with the ledger's
        next group (within its 10 ms linger when nothing follows), so a read right after an
        answer may come before it: while a forwarded tool action has no result, read again,
        for at most half a second (an action still open then is returned open)."""
        deadline = time.monotonic() + 0.5
        while True:
            records = ledger_records(self.data)
            if not _open_tool_actions(records) or time.monotonic() > deadline:
                return records
            time.sleep(0.02)

    def verify(self) -> subprocess.CompletedProcess[str]:
        return run_warden("audit", "verify", *ledger_args(self.data))

    # -- upstream child processes -----------------------------------------------------------

    def upstream_pids(self, needle: str) -> list[int]:
        """Live child processes of the gateway whose command line contains `needle`."""
        return children_matching(self.pid, needle)


def _ignore_sigxfsz() -> None:
    """In the gateway's process, before exec: a write past a file-size limit fails with EFBIG
    instead of killing the process (an ignored signal stays ignored across exec)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def _copy_to(pipe: Any, path: Path) -> None:
    with path.open("ab") as out:
        for line in iter(pipe.readline, b""):
            out.write(line)
            out.flush()


def _open_tool_actions(records: list[dict[str, Any]]) -> bool:
    """Whether a forwarded tool action (not a model call's provider-side action, which its
    completion closes) has no result among `records`."""
    forwarded = {
        r["payload"]["action"]
        for r in records
        if r["kind"] == "action_forwarded" and "call" not in r["payload"]
    }
    closed = {r["payload"].get("action") for r in records if r["kind"] == "action_result"}
    return bool(forwarded - closed)


def ledger_records(data: Path) -> list[dict[str, Any]]:
    out = run_warden("audit", "tail", *ledger_args(data), "-n", "1000000")
    assert out.returncode == 0, f"warden audit tail failed ({out.returncode}): {out.stderr}"
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def children_matching(ppid: int, needle: str) -> list[int]:
    """Processes whose parent is `ppid` and whose command line contains `needle` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = (
                Path(f"/proc/{entry}/cmdline")
                .read_bytes()
                .replace(b"\0", b" ")
                .decode(errors="replace")
            )
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        # Field 2 (comm) is in parentheses and may contain spaces: split after its last ')'.
        fields = stat[stat.rindex(")") + 2 :].split()
        state, parent = fields[0], int(fields[1])
        if parent == ppid and needle in cmdline and state != "Z":
            found.append(int(entry))
    return found


def wait_for(what: str, check: Callable[[], Any], timeout: float = 20.0, every: float = 0.1) -> Any:
    """Polls `check` until it returns something truthy; fails naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


# --------------------------------------------------------------------------------------------
# Ledger helpers
# --------------------------------------------------------------------------------------------


def actions_by_id(records: Iterable[dict[str, Any]]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Records that carry an action id, grouped: action id → kind → records."""
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for r in records:
        action = r["payload"].get("action") if isinstance(r["payload"], dict) else None
        if action:
            out.setdefault(action, {}).setdefault(r["kind"], []).append(r)
    return out


def attempts(records: Iterable[dict[str, Any]], tool: str) -> list[dict[str, Any]]:
    return [r for r in records if r["kind"] == "action_attempted" and r["payload"]["tool"] == tool]


def find_attempt(
    records: list[dict[str, Any]], tool: str, arguments: dict[str, Any]
) -> dict[str, Any]:
    found = [r for r in attempts(records, tool) if r["payload"]["arguments"] == arguments]
    assert len(found) == 1, f"expected one attempt of {tool} {arguments}, found {len(found)}"
    return found[0]


def assert_recorded(
    records: list[dict[str, Any]], tool: str, arguments: dict[str, Any], allowed: bool
) -> dict[str, list[dict[str, Any]]]:
    """The call is in the ledger as attempted and decided, and — exactly when it was allowed —
    as forwarded with a result. Returns its records by kind."""
    attempt = find_attempt(records, tool, arguments)
    action = attempt["payload"]["action"]
    kinds = actions_by_id(records)[action]
    assert len(kinds.get("action_decided", [])) == 1, kinds.keys()
    verdict = kinds["action_decided"][0]["payload"]["decision"]["verdict"]
    if allowed:
        assert verdict == "allow", kinds["action_decided"][0]
        assert len(kinds.get("action_forwarded", [])) == 1, kinds.keys()
        assert len(kinds.get("action_result", [])) == 1, kinds.keys()
    else:
        assert verdict in ("deny", "ask"), kinds["action_decided"][0]
        assert "action_forwarded" not in kinds, kinds.keys()
        assert "action_result" not in kinds, kinds.keys()
    seqs = [r["seq"] for rs in kinds.values() for r in rs]
    assert attempt["seq"] == min(seqs), "the attempt is recorded first"
    return kinds


def assert_refused_before_decision(
    records: list[dict[str, Any]], tool: str, arguments: dict[str, Any]
) -> None:
    """A tool the charter's inventory does not name: its attempt is recorded with the refusal,
    and nothing else happened to it (no decision, no forwarding)."""
    attempt = find_attempt(records, tool, arguments)
    assert "inventory" in attempt["payload"]["refused"], attempt
    kinds = actions_by_id(records)[attempt["payload"]["action"]]
    assert list(kinds) == ["action_attempted"], kinds.keys()


# --------------------------------------------------------------------------------------------
# MCP clients
# --------------------------------------------------------------------------------------------


def http_client(token: str | None, timeout: float = 60.0) -> httpx2.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(timeout))


@asynccontextmanager
async def mcp_http(url: str, token: str) -> AsyncIterator[ClientSession]:
    """An initialised MCP session over Streamable HTTP."""
    async with http_client(token) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session


@asynccontextmanager
async def mcp_stdio(url: str, token: str) -> AsyncIterator[ClientSession]:
    """An initialised MCP session over stdio, through `warden connect`."""
    params = StdioServerParameters(
        command=str(WARDEN_BIN), args=["connect", "--url", url, "--token", token]
    )
    async with stdio_client(params, errlog=sys.stderr) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            yield session


def mcp_error_in(exc: BaseException) -> MCPError | None:
    """The MCPError inside `exc` (anyio wraps errors of task groups in exception groups)."""
    if isinstance(exc, MCPError):
        return exc
    for inner in getattr(exc, "exceptions", ()):
        found = mcp_error_in(inner)
        if found is not None:
            return found
    return None


def text_of(result: Any) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def _print_logs_if_failed(request: pytest.FixtureRequest, gateways: Iterable[Gateway]) -> None:
    """The tail of each gateway's log, shown by pytest with a failed test's output."""
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for gw in gateways:
            tail = "\n".join(gw.log().splitlines()[-80:])
            print(f"--- warden serve log ({gw.log_path}), last lines ---\n{tail}")


@pytest.fixture(scope="module", autouse=True)
def _drop_databases() -> Iterator[None]:
    """Drops the PostgreSQL databases a test module made once it ends (after its gateways,
    module-scoped ones included, have stopped): a run leaves nothing in the cluster, and its
    disk holds one module's databases at a time."""
    yield
    names, _DATABASES[:] = list(_DATABASES), []
    if names:
        # One `-c` each: DROP DATABASE cannot run in the transaction a multi-statement string is.
        drops = [arg for n in names for arg in ("-c", f"DROP DATABASE IF EXISTS {n} WITH (FORCE)")]
        out = subprocess.run(
            [_psql(), f"{PG_BASE}/postgres", "-v", "ON_ERROR_STOP=1", "-q", *drops],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, f"cannot drop the test databases: {out.stderr}"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace.create(tmp_path)


@pytest.fixture
def start_gateway(
    request: pytest.FixtureRequest, tmp_path: Path, workspace: Workspace
) -> Iterable[Callable[..., Gateway]]:
    """Starts gateways (each on its own data directory); stops them all at the end of the
    test and checks that each exited 0."""
    started: list[Gateway] = []

    def start(
        *extra_args: str,
        approval_timeout: str = "2s",
        models: str = "",
        env: dict[str, str] | None = None,
        charter: str | None = None,
    ) -> Gateway:
        d = tmp_path / f"gw{len(started)}"
        d.mkdir()
        gw = Gateway(
            tmp=d,
            ws=workspace,
            extra_args=list(extra_args),
            approval_timeout=approval_timeout,
            models=models,
            env=dict(env or {}),
            charter_override=charter,
        )
        started.append(gw)
        return gw.start()

    yield start
    _print_logs_if_failed(request, started)
    failures = []
    for gw in started:
        code = gw.stop()
        if code != 0:
            failures.append(f"warden serve exited {code} after SIGTERM:\n{gw.log()}")
        elif not gw.tampered and (gw.store or (gw.data / "ledger.db").exists()):
            verified = gw.verify()
            if verified.returncode != 0:
                failures.append(
                    f"`warden audit verify` failed after the test:\n{verified.stdout}{verified.stderr}"
                )
    assert not failures, "\n".join(failures)


@pytest.fixture
def gateway(start_gateway: Callable[..., Gateway]) -> Gateway:
    return start_gateway()
