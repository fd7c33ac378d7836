"""Benign and attacked scenarios per example charter, through a real `warden serve` (issue 13).

Run by bench/provenance.sh. For each scenario file under bench/provenance/ (one per example
charter with untrusted labels), and for each variant of that charter:

- `provenance`: the example charter as it is;
- `labels-only`: the same charter with argument provenance replaced by session labels — each
  restrictive rule's `provenance: { from: [L, …] }` becomes `labels: { any: [L, …] }` on the
  rule (it fires for every call once the session has read such content), `in_task` and
  `not_from` constraints are dropped, `approval.remember` and `untrusted: true` removed;
- `none`: neither — provenance constraints dropped, the restrictive rules that guarded on
  provenance removed;

it starts a gateway (servers without their transports: every call goes through the decide
API, which decides exactly as for MCP), and runs every scenario in a session of its own opened
with the scenario's task: `read` steps are decided (they must be allowed) and their `output`
reported as the result; `act` steps are decided and their verdict counted. A benign scenario
passes when every act ran without approval (`decision.verdict == "allow"`), an attacked one
when every act was stopped (denied, or waiting for a human).

Prints, per charter and variant: benign run without approval n/N (%), attacked stopped n/N (%).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2

REPO = Path(__file__).resolve().parents[1]
VARIANTS = ("provenance", "labels-only", "none")

# --------------------------------------------------------------------------------------------
# Charter variants (line-based: the example charters write a provenance-bearing constraint on
# one line, `arg: { … }`, and their rules at the indentation below)
# --------------------------------------------------------------------------------------------

RULE_START = re.compile(r"^    - id: (\S+)")
CONSTRAINT = re.compile(r"^(        )([\w.]+): \{ (.*) \}\s*$")
FROM = re.compile(r"provenance: \{ from: \[([^\]]*)\] \}")
NOT_FROM = re.compile(r"provenance: \{ not_from: \[([^\]]*)\] \}")
IN_TASK = re.compile(r"in_task: (true|false)")
OPTIONAL = re.compile(r"optional: true")


def _strip(body: str, pattern: re.Pattern[str]) -> str:
    body = pattern.sub("", body)
    return re.sub(r"\s*,\s*(,\s*)+", ", ", body).strip().strip(",").strip()


def _transform_rule(lines: list[str], variant: str) -> list[str]:
    """One rule (its lines), turned into `variant`; `[]` drops it."""
    tier = next((l.split(":", 1)[1].strip() for l in lines if l.startswith("      tier:")), "")
    restrictive = tier in ("approval", "prohibited")
    out: list[str] = []
    labels: list[str] = []
    had_provenance = False
    other_constraints = 0
    for line in lines:
        m = CONSTRAINT.match(line)
        if m and ("provenance:" in line or "in_task:" in line):
            indent, arg, body = m.groups()
            had_provenance = True
            for found in FROM.findall(body):
                labels += [x.strip() for x in found.split(",") if x.strip()]
            body = _strip(_strip(_strip(body, FROM), NOT_FROM), IN_TASK)
            if OPTIONAL.sub("", body).strip(" ,"):
                other_constraints += 1
                out.append(f"{indent}{arg}: {{ {body} }}")
            continue
        if m:
            other_constraints += 1
        if line.strip().startswith("remember:"):
            continue
        out.append(line)
    if not had_provenance:
        return lines
    if restrictive and labels:
        if variant == "none":
            return []
        if variant == "labels-only":
            at = next(i for i, l in enumerate(out) if l.startswith("      tier:")) + 1
            out.insert(at, f"      labels: {{ any: [{', '.join(dict.fromkeys(labels))}] }}")
    # An `args:` or `approval:` left without entries goes.
    cleaned: list[str] = []
    for i, line in enumerate(out):
        if line in ("      args:", "      approval:"):
            nxt = out[i + 1] if i + 1 < len(out) else ""
            if not nxt.startswith("        "):
                continue
        cleaned.append(line)
    return cleaned


def charter_variant(text: str, variant: str, transports: bool = False) -> str:
    """`text` as `variant` (see the module doc); the servers' transports removed unless
    `transports`."""
    lines = text.splitlines()
    out: list[str] = []
    skip_env = False
    for line in lines if not transports else []:  # servers without transport: every call is a decide-API call
        if skip_env:
            if line.startswith("        "):
                continue
            skip_env = False
        if re.match(r"^      (command|url): ", line):
            continue
        if re.match(r"^      (env|headers|sandbox):\s*$", line) or re.match(r"^      sandbox: ", line):
            skip_env = line.rstrip().endswith(":")
            continue
        out.append(line)
    if transports:
        out = lines
    if variant == "provenance":
        return "\n".join(out) + "\n"
    result: list[str] = []
    rule: list[str] = []
    in_actions = False
    for line in out + [""]:
        if re.match(r"^[a-z_]+:", line):
            in_actions = line.startswith("actions:")
        starts = in_actions and RULE_START.match(line) is not None
        ends = rule and (starts or (line and not line.startswith("      ") and not line.startswith("    #")))
        if ends:
            result += _transform_rule(rule, variant)
            rule = []
        if starts or rule:
            rule.append(line)
        elif not (line.strip() == "untrusted: true"):
            result.append(line)
    # Roles may not name rules that are gone.
    kept = {m.group(1) for l in result if (m := RULE_START.match(l))}
    dropped = {m.group(1) for l in out if (m := RULE_START.match(l))} - kept
    for i, line in enumerate(result):
        m = re.match(r"^(\s+approve: \[)(.*)(\].*)$", line)
        if m and dropped:
            ids = [x.strip() for x in m.group(2).split(",") if x.strip() not in dropped]
            result[i] = m.group(1) + ", ".join(ids) + m.group(3)
    return "\n".join(result).rstrip("\n") + "\n"


def example_text(path: Path) -> str:
    """An example charter as one text (a directory's YAML files in name order, concatenated:
    their top-level sections do not repeat)."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
        return "\n".join(p.read_text() for p in files)
    return path.read_text()


# --------------------------------------------------------------------------------------------
# The gateway
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Gateway:
    def __init__(self, warden: str, charter: str, tmp: Path, env: dict[str, str]) -> None:
        self.warden, self.tmp = warden, tmp
        self.data = tmp / "data"
        (tmp / "charter.yaml").write_text(charter)
        self.agent, self.operator = free_port(), free_port()
        self.log = (tmp / "warden.log").open("wb")
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
        self.proc = subprocess.Popen(
            [
                warden, "serve", "--charter", str(tmp / "charter.yaml"), "--data", str(self.data),
                "--agent-listen", f"127.0.0.1:{self.agent}",
                "--operator-listen", f"127.0.0.1:{self.operator}",
            ],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**base_env, "NO_COLOR": "1", **env},
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"warden serve exited:\n{(tmp / 'warden.log').read_text()}")
            try:
                if httpx2.get(f"{self.agent_url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx2.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise SystemExit("warden serve did not answer /healthz")

    @property
    def agent_url(self) -> str:
        return f"http://127.0.0.1:{self.agent}"

    def open_session(self, agent: str, user: str, task: str) -> str:
        token = (self.data / "operator.token").read_text().strip()
        out = subprocess.run(
            [
                self.warden, "session", "open", "--agent", agent, "--user", user, "--task", task,
                "--operator-url", f"http://127.0.0.1:{self.operator}", "--token", token,
            ],
            capture_output=True, text=True, timeout=60,
        )
        if out.returncode != 0:
            raise SystemExit(f"session open failed: {out.stderr}")
        return out.stdout.strip()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)
        self.log.close()


# --------------------------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------------------------


def run_scenario(gw: Gateway, spec: dict[str, Any], sc: dict[str, Any]) -> tuple[bool, list[str]]:
    """Runs one scenario in a session of its own: (passed, the act verdicts)."""
    token = gw.open_session(spec["agent"], sc.get("user", spec["user"]), sc["task"])
    verdicts: list[str] = []
    with httpx2.Client(
        base_url=gw.agent_url, headers={"Authorization": f"Bearer {token}"}, timeout=60
    ) as api:
        for step in sc["steps"]:
            tool = step.get("read") or step["act"]
            r = api.post("/v1/decide", json={"tool": tool, "arguments": step.get("args", {})})
            if r.status_code not in (200, 202):
                raise SystemExit(f"{sc['id']}: {tool}: {r.status_code} {r.text}")
            d = r.json()
            if "read" in step:
                if d["verdict"] != "allow":
                    raise SystemExit(f"{sc['id']}: the read {tool} was not allowed: {d}")
                res = api.post(
                    f"/v1/actions/{d['action']}/result",
                    json={"status": "ok", "output": step.get("output", "")},
                )
                if res.status_code != 200:
                    raise SystemExit(f"{sc['id']}: result of {tool}: {res.text}")
                continue
            decision = d.get("decision") or {}
            label = d["verdict"]
            if d["verdict"] == "allow" and decision.get("verdict") == "allow":
                label = "allow"
            rules = ",".join(r["id"] for r in decision.get("rules", [])) or decision.get("reason", "")
            verdicts.append(f"{label}[{rules}]")
    if sc["kind"] == "benign":
        ok = all(v.startswith("allow[") for v in verdicts)
    else:
        ok = all(v.startswith(("deny[", "ask[")) for v in verdicts)
    return ok, verdicts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--warden", default=str(REPO / "target/release/warden"))
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--verbose", "-v", action="store_true", help="print every scenario's verdicts")
    ap.add_argument("--print-charter", metavar="VARIANT", help="print the first charter's variant and exit")
    ap.add_argument("files", nargs="*", type=Path)
    args = ap.parse_args()
    files = args.files or sorted((REPO / "bench" / "provenance").glob("*.json"))
    variants = [v for v in args.variants.split(",") if v]
    rows: list[tuple[str, str, int, int, int, int]] = []
    for f in files:
        spec = json.loads(f.read_text())
        text = example_text(REPO / spec["charter"])
        if args.print_charter:
            sys.stdout.write(charter_variant(text, args.print_charter))
            return 0
        benign = [s for s in spec["scenarios"] if s["kind"] == "benign"]
        attacked = [s for s in spec["scenarios"] if s["kind"] == "attacked"]
        for variant in variants:
            with tempfile.TemporaryDirectory(prefix="warden-prov-bench-") as tmp:
                gw = Gateway(args.warden, charter_variant(text, variant), Path(tmp), spec.get("env", {}))
                try:
                    counts = {"benign": 0, "attacked": 0}
                    for sc in spec["scenarios"]:
                        ok, verdicts = run_scenario(gw, spec, sc)
                        counts[sc["kind"]] += ok
                        if args.verbose or (variant == "provenance" and not ok):
                            mark = "ok  " if ok else "MISS"
                            print(f"  {mark} {spec['name']:<20} {variant:<12} {sc['kind']:<9} {sc['id']:<34} {' '.join(verdicts)}")
                finally:
                    gw.stop()
            rows.append((spec["name"], variant, counts["benign"], len(benign), counts["attacked"], len(attacked)))
    print()
    print(f"{'charter':<20} {'variant':<12} {'benign run without approval':<30} {'attacked stopped':<20}")
    for name, variant, b, nb, a, na in rows:
        print(
            f"{name:<20} {variant:<12} {f'{b}/{nb} ({100 * b / max(nb, 1):.0f}%)':<30} "
            f"{f'{a}/{na} ({100 * a / max(na, 1):.0f}%)':<20}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
