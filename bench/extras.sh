# Sourced by bench/gateway.sh and bench/models.sh: what runs beside the gateway when asked, so
# a run can be compared with and without it.
#
#   CONSOLE=1  a headless Chromium (bench/console_viewer.py: Playwright for Python from .venv,
#              Debian's /usr/bin/chromium; scripts/test.sh installs both) signed in to the
#              console and kept open on the live timeline of the bench's session for the whole
#              run; at the end, how many rows it appended live.
#   OTLP=1     the OTLP receiver of the end-to-end tests (tests/e2e/otlp_receiver.py, on the
#              official protobuf definitions, run by bench/otlp_sink.py) and the gateway's export
#              to it on (OTEL_EXPORTER_OTLP_ENDPOINT); at the end, how many spans it received.
#
# The calling script sets `pids` (processes killed at exit) and `tmp`, and calls:
#   extras_env                        before starting warden: prints the variables to start it with
#   extras_start OPERATOR_URL DATA SESSION_ID   after the session is open
#   extras_report                     after the runs

CONSOLE=${CONSOLE:-0}
OTLP=${OTLP:-0}
PYTHON_VENV=${PYTHON_VENV:-.venv/bin/python}
OTLP_PORT=""

extras_free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

extras_label() {
  local parts=()
  [ "$CONSOLE" = 1 ] && parts+=("console open on a live timeline")
  [ "$OTLP" = 1 ] && parts+=("OTLP export on")
  if [ ${#parts[@]} -eq 0 ]; then echo "console closed, no OTLP export"; else
    local IFS=","; echo "${parts[*]}" | sed 's/,/, /g'; fi
}

# Starts the receiver (OTLP=1) and prints `NAME=VALUE` lines for warden's environment.
extras_env() {
  if [ "$OTLP" = 1 ]; then
    [ -x "$PYTHON_VENV" ] || { echo "OTLP=1 needs $PYTHON_VENV (scripts/test.sh creates it)" >&2; return 1; }
    OTLP_PORT=$(extras_free_port)
    "$PYTHON_VENV" bench/otlp_sink.py "$OTLP_PORT" > "$tmp/otlp.log" 2>&1 &
    OTLP_PID=$!
    pids+=("$OTLP_PID")
    for _ in $(seq 1 100); do
      grep -q "listening on" "$tmp/otlp.log" 2>/dev/null && break
      sleep 0.1
    done
    grep -q "listening on" "$tmp/otlp.log" || { cat "$tmp/otlp.log" >&2; return 1; }
    echo "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$OTLP_PORT"
  fi
}

# Opens the console on the session's live timeline (CONSOLE=1).
extras_start() { # operator_url data_dir session_id
  if [ "$CONSOLE" = 1 ]; then
    [ -x "$PYTHON_VENV" ] || { echo "CONSOLE=1 needs $PYTHON_VENV (scripts/test.sh creates it)" >&2; return 1; }
    [ -x /usr/bin/chromium ] || { echo "CONSOLE=1 needs /usr/bin/chromium (scripts/test.sh installs it)" >&2; return 1; }
    "$PYTHON_VENV" bench/console_viewer.py --console "$1" --token-file "$2/operator.token" \
      --session "$3" > "$tmp/viewer.log" 2>&1 &
    VIEWER_PID=$!
    pids+=("$VIEWER_PID")
    for _ in $(seq 1 600); do
      grep -q '^viewing' "$tmp/viewer.log" 2>/dev/null && return 0
      kill -0 "$VIEWER_PID" 2>/dev/null || break
      sleep 0.1
    done
    echo "the console viewer did not open the timeline:" >&2
    cat "$tmp/viewer.log" >&2
    return 1
  fi
}

# Prints what the viewer and the receiver saw.
extras_report() {
  echo "extras: $(extras_label)"
  if [ "$CONSOLE" = 1 ]; then
    kill -TERM "$VIEWER_PID" 2>/dev/null || true
    wait "$VIEWER_PID" 2>/dev/null || true
    echo "console viewer: $(tail -n 1 "$tmp/viewer.log")"
  fi
  if [ "$OTLP" = 1 ]; then
    sleep 2 # the exporter's last batch leaves within a second
    kill -TERM "$OTLP_PID" 2>/dev/null || true
    wait "$OTLP_PID" 2>/dev/null || true
    echo "OTLP receiver: $(grep 'spans received' "$tmp/otlp.log" || tail -n 1 "$tmp/otlp.log")"
  fi
}
