# Shared by the bench scripts (sourced, from the repository's root): free ports, the echo
# upstream and its charter, a gateway on SQLite in front of it, and a session on it (or all of
# them at once: echo_gateway). Every process started here is added to the caller's `pids`
# array, which its cleanup kills.

# bench_start: BIN (the binaries' directory; target/release, built first, when unset), tmp (a
# directory removed at exit) and pids (the processes killed at exit).
bench_start() {
  if [ -z "${BIN:-}" ]; then
    cargo build --release -q -p warden -p warden-testkit
    BIN=target/release
  fi
  tmp=$(mktemp -d)
  pids=()
  trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"' EXIT
}

# free_port: prints a TCP port free on 127.0.0.1 now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_echo BIN LOG: warden-echo-server (from the directory BIN) on a free port, its output
# in LOG; sets ECHO_PORT and ECHO_PID.
start_echo() {
  ECHO_PORT=$(free_port)
  "$1/warden-echo-server" --listen "127.0.0.1:$ECHO_PORT" > "$2" 2>&1 &
  ECHO_PID=$!
  pids+=("$ECHO_PID")
}

# echo_charter [RULE...]: prints the bench charter: the agent `bench-agent`, the echo server at
# ECHO_PORT, its `echo` tool autonomous for texts like "hello 1 2" (then each RULE, a flow
# mapping), and one approver.
echo_charter() {
  cat <<YAML
version: 1
identity: { id: bench-agent, name: Bench, purpose: benchmarks, serves: the benchmark }
inventory:
  servers:
    - { id: echo, url: "http://127.0.0.1:$ECHO_PORT/mcp", tools: [echo] }
actions:
  rules:
    - { id: echo, tool: echo.echo, tier: autonomous, args: { text: { regex: "hello [0-9]+ [0-9]+" } } }
YAML
  local rule
  for rule in "$@"; do echo "    - $rule"; done
  cat <<YAML
authority:
  roles: [{ id: ops, approve: [default] }]
  principals: [{ id: bench, roles: [ops] }]
YAML
}

# start_warden BIN CHARTER DATA LOG [ENV=VALUE...]: `warden serve` (from BIN) on CHARTER with
# the data directory DATA, agent and operator planes on free ports, the environment given
# added; waits until it answers `/healthz`. Sets AGENT_PORT, OP_PORT and WARDEN_PID.
start_warden() {
  local bin=$1 charter=$2 data=$3 log=$4
  shift 4
  AGENT_PORT=$(free_port); OP_PORT=$(free_port)
  env "$@" WARDEN_LOG=warn "$bin/warden" serve --charter "$charter" --data "$data" \
    --agent-listen "127.0.0.1:$AGENT_PORT" --operator-listen "127.0.0.1:$OP_PORT" > "$log" 2>&1 &
  WARDEN_PID=$!
  pids+=("$WARDEN_PID")
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$AGENT_PORT/healthz" > /dev/null 2>&1 && return 0
    sleep 0.1
  done
  cat "$log" >&2
  return 1
}

# open_session BIN DATA: opens a session of `bench-agent` for `bench` (2 hours) through the
# operator plane at OP_PORT; prints the JSON answer (`token`, `id`).
open_session() {
  "$1/warden" session open --agent bench-agent --user bench --ttl 2h --json \
    --operator-url "http://127.0.0.1:$OP_PORT" --data "$2"
}

# json_field NAME: prints the member NAME of the JSON object on standard input.
json_field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# switches PID: the context switches of every thread of PID so far (voluntary and not), from
# /proc; each cross-thread hand-off on a call's path is one or two.
switches() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {s += $2} END {print s}'; }

# echo_gateway BIN DIR [ENV=VALUE...]: the echo server, the bench charter, a gateway in front
# of it (data in DIR/data, logs in DIR, the environment given added) and a session, all from
# the directory BIN; sets ECHO_PORT, ECHO_PID, AGENT_PORT, OP_PORT, WARDEN_PID and TOKEN.
echo_gateway() {
  start_echo "$1" "$2/echo.log"
  echo_charter > "$2/charter.yaml"
  start_warden "$1" "$2/charter.yaml" "$2/data" "$2/warden.log" "${@:3}"
  TOKEN=$(open_session "$1" "$2/data" | json_field token)
}
