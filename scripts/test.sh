#!/usr/bin/env bash
# Runs every check and test of the repository on a fresh machine; this is the README's test
# command and what CI (.ci/run) calls. It installs what the tests need besides the Rust
# toolchain (which the machine has): the real MCP peers of the end-to-end suite — the npm
# reference servers (`npm ci`, pinned by package-lock.json) and the Python MCP SDK with pytest
# (a virtual environment at .venv, pinned by requirements-test.txt; the LangGraph example's own at
# .venv-langgraph, pinned by examples/langgraph/requirements.txt), and the browser the console's
# tests drive (Debian's `chromium`, run by Playwright for Python, which downloads no browser of
# its own), and PostgreSQL (Debian's `postgresql`: the tests of the shared store run against a
# throwaway cluster this script starts in a temporary directory on a free port, exported as
# WARDEN_TEST_PG_URL, and removes at exit). Installing is skipped when what is installed already
# matches the pins.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# A fingerprint of the given files and of the command's output (a tool's version).
fingerprint() {
  local cmd=$1
  shift
  { cat "$@"; $cmd --version 2>&1; } | sha256sum | cut -d' ' -f1
}

install_node_peers() {
  command -v node >/dev/null || die "Node.js 20 or newer is needed for the end-to-end tests"
  command -v npm >/dev/null || die "npm is needed for the end-to-end tests"
  local major
  major=$(node -p 'process.versions.node.split(".")[0]')
  ((major >= 20)) || die "Node.js 20 or newer is needed, found $(node --version)"
  local want have stamp=node_modules/.warden-installed
  want=$(fingerprint node package.json package-lock.json)
  have=$(cat "$stamp" 2>/dev/null || true)
  if [[ "$want" == "$have" ]]; then
    echo "node_modules matches package-lock.json"
    return
  fi
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" >"$stamp"
}

install_python_peers() {
  local python=${PYTHON:-python3}
  command -v "$python" >/dev/null || die "Python 3.10 or newer is needed for the end-to-end tests"
  "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
    die "Python 3.10 or newer is needed, found $("$python" --version 2>&1)"
  local want have stamp=.venv/.warden-installed
  want=$(fingerprint "$python" requirements-test.txt)
  have=$(cat "$stamp" 2>/dev/null || true)
  if [[ -x .venv/bin/python && "$want" == "$have" ]]; then
    echo ".venv matches requirements-test.txt"
    return
  fi
  rm -rf .venv
  if ! "$python" -m venv .venv; then
    rm -rf .venv
    # Debian's python3 keeps venv (ensurepip) in a package of its own.
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
      apt-get install -y -qq python3-venv >/dev/null ||
        { apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null; } ||
        die "cannot install python3-venv"
      "$python" -m venv .venv
    else
      die "\`$python -m venv\` does not work: install the python3-venv package"
    fi
  fi
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-test.txt
  echo "$want" >"$stamp"
}

# The Python client of the decide API (clients/python), which the end-to-end tests import:
# installed into .venv again whenever one of its files changes (its dependency, httpx2, is
# pinned in requirements-test.txt; pip fetches the build backend, hatchling, from PyPI).
install_python_client() {
  local want have stamp=.venv/.warden-client-installed
  want=$(find clients/python -type f -not -path '*/__pycache__/*' -print0 | sort -z |
    xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
  have=$(cat "$stamp" 2>/dev/null || true)
  if [[ "$want" == "$have" ]]; then
    echo "the Python client in .venv matches clients/python"
    return
  fi
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps \
    --force-reinstall ./clients/python
  echo "$want" >"$stamp"
}

# The LangGraph example runs in a virtual environment of its own (.venv-langgraph, pinned by
# examples/langgraph/requirements.txt): `langchain-mcp-adapters` needs the MCP SDK 1.x, and
# .venv has 2.x. Called after install_python_peers, which made sure `python -m venv` works.
install_langgraph_peers() {
  local python=${PYTHON:-python3}
  local dir=.venv-langgraph reqs=examples/langgraph/requirements.txt
  local want have stamp=$dir/.warden-installed
  want=$(fingerprint "$python" "$reqs")
  have=$(cat "$stamp" 2>/dev/null || true)
  if [[ -x $dir/bin/python && "$want" == "$have" ]]; then
    echo "$dir matches $reqs"
    return
  fi
  rm -rf "$dir"
  "$python" -m venv "$dir"
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check -r "$reqs"
  echo "$want" >"$stamp"
}

# The packaging test checks the systemd unit with `systemd-analyze verify`; Debian's `systemd`
# package brings it (nothing is started: in a container it installs and works as a program).
install_systemd_analyze() {
  if command -v systemd-analyze >/dev/null; then
    echo "systemd-analyze: $(systemd-analyze --version | head -n1)"
    return
  fi
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    apt-get install -y -qq --no-install-recommends systemd >/dev/null ||
      { apt-get update -qq && apt-get install -y -qq --no-install-recommends systemd >/dev/null; } ||
      die "cannot install systemd (for systemd-analyze)"
  else
    die "systemd-analyze is needed for the packaging test: install the systemd package"
  fi
}

# The console's browser tests (tests/e2e/test_console.py) drive Debian's `chromium` through
# Playwright for Python (pinned in requirements-test.txt) with `executable_path=/usr/bin/chromium`:
# Playwright's own browser download is never used. `fonts-dejavu-core` gives the screenshots
# text to render. Installed only when /usr/bin/chromium is missing.
install_chromium() {
  if [[ -x /usr/bin/chromium ]]; then
    echo "chromium: $(/usr/bin/chromium --version 2>/dev/null | head -n1)"
    return
  fi
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    local packages=(chromium fonts-dejavu-core)
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null ||
      { apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null; } ||
      die "cannot install chromium (for the console's browser tests)"
  else
    die "/usr/bin/chromium is needed for the console's browser tests: install Debian's chromium package"
  fi
}

# PostgreSQL for the shared store's tests: Debian's `postgresql` package (its binaries in
# /usr/lib/postgresql/*/bin; no system cluster is used).
install_postgresql() {
  if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    echo "postgresql: $(ls /usr/lib/postgresql | sort -V | tail -n1)"
    return
  fi
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null ||
      { apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null; } ||
      die "cannot install postgresql (for the shared store's tests)"
  else
    die "PostgreSQL is needed for the shared store's tests: install Debian's postgresql package"
  fi
}

# A throwaway cluster for the test run (initdb refuses root: as root it belongs to `postgres`).
PG_DIR=
start_test_cluster() {
  local bin port
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
  PG_DIR=$(mktemp -d /tmp/warden-test-pg.XXXXXX)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  local run=()
  if [[ $(id -u) == 0 ]]; then
    chown postgres:postgres "$PG_DIR"
    run=(runuser -u postgres --)
  fi
  "${run[@]}" "$bin/initdb" -D "$PG_DIR/data" -A trust -U warden --no-sync >/dev/null
  "${run[@]}" "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w \
    -o "-p $port -k $PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=500" start >/dev/null
  export WARDEN_TEST_PG_URL="postgres://warden@127.0.0.1:$port"
  echo "test cluster: $WARDEN_TEST_PG_URL ($PG_DIR)"
  trap stop_test_cluster EXIT
}
stop_test_cluster() {
  if [[ -n $PG_DIR ]]; then
    local bin run=()
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
    [[ $(id -u) == 0 ]] && run=(runuser -u postgres --)
    "${run[@]}" "$bin/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
  fi
}

step "install the end-to-end test peers (npm MCP servers, Python MCP SDK, the Python client, agent frameworks, systemd-analyze, chromium, postgresql)"
install_node_peers
install_python_peers
install_python_client
install_langgraph_peers
install_systemd_analyze
install_chromium
install_postgresql

# The clean debug build of every target takes about 4 GB (docs/benchmarks.md, "The test build on disk"): a run
# that cannot have it says so first, instead of failing in the linker.
step "free disk space for the build"
target_dir=${CARGO_TARGET_DIR:-target}
mkdir -p "$target_dir"
free_gb=$(df -P -BG "$target_dir" | awk 'NR == 2 { sub("G", "", $4); print $4 }')
echo "${free_gb} GB free where $target_dir is"
if ((free_gb < 6)); then
  echo "warning: the build needs about 4 GB; with ${free_gb} GB free it may fail with 'No space left on device'" >&2
fi

step "cargo fmt --check"
cargo fmt --all -- --check

# --all-targets type-checks the benchmarks too, which is all this script needs of them: building
# them (`cargo bench --no-run`, a second, optimised build of the workspace) took almost half of
# its time.
step "cargo clippy (all targets, benchmarks included; warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo xtask check-deps (the internal dependency graph against the crate map)"
cargo xtask check-deps

# cargo-deny is not preinstalled (`cargo install cargo-deny --locked`); the advisories check needs
# the network, so it is not run here (see deny.toml).
if cargo deny --version >/dev/null 2>&1; then
  step "cargo deny (licences, sources, duplicate versions; offline)"
  # Offline needs every crate of every target on disk: a build fetches only this platform's.
  cargo fetch --locked
  cargo deny --frozen check --hide-inclusion-graph bans licenses sources
else
  step "cargo deny: not installed, skipped"
fi

step "build the mock model provider, the history writer and the ledger backdating tool the end-to-end suite uses (cargo test does not build them)"
cargo build -p warden-testkit --bin warden-mock-llm --bin warden-ledger-history --bin warden-ledger-backdate --locked

step "tests (with a throwaway PostgreSQL cluster)"
start_test_cluster
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --profile ci
else
  cargo test --workspace --locked
fi

step "doc tests"
cargo test --workspace --doc --locked

step "fuzz targets build, and run briefly without instrumentation"
cargo build -p warden-fuzz --locked
target/debug/canonicalize -runs=100000 >/dev/null 2>&1
target/debug/charter_parser -runs=5000 -max_len=4096 >/dev/null 2>&1
target/debug/provider_actions -runs=20000 -max_len=4096 >/dev/null 2>&1

echo
echo "all checks passed"
