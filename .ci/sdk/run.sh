#!/usr/bin/env bash
# Notion's official SDKs through bulwark's notion_proxy example.
#
# Installs the JS SDK (@notionhq/client 5, npm) and the Python SDK (notion-client 3.1, pip)
# into a temporary folder (nothing is committed, nothing installed globally), builds
# examples/notion_proxy.rs, starts two proxies per SDK (each with its own embedded FakeNotion:
# a waiting one with --max-retries 1, and a rejecting one with --max-wait-ms 0), then runs
# .ci/sdk/conformance.mjs and .ci/sdk/conformance.py against them. Each prints "ok - …" /
# "not ok - …" per check. Exits non-zero if anything failed; the proxies are stopped and the
# temporary folder removed on exit.
#
#   bash .ci/sdk/run.sh                    # from anywhere; needs cargo, node >= 18, npm, python3 >= 3.8
#   KEEP_SDK_TMP=1 bash .ci/sdk/run.sh     # keep the temporary folder (logs, SDKs) for a look
set -euo pipefail
cd "$(dirname "$0")/../.."

JS_SDK="@notionhq/client@5"
PY_SDK="notion-client==3.1.*"
INSTALL_TIMEOUT=600   # seconds, per package manager
BUILD_TIMEOUT=1800    # seconds, building the example
READY_TIMEOUT=30      # seconds, for a proxy to write its ready file
SCRIPT_TIMEOUT=300    # seconds, per conformance script

started=$SECONDS
say() { printf '[sdk %3ds] %s\n' "$((SECONDS - started))" "$*"; }

for tool in cargo node npm python3 timeout; do
    command -v "$tool" >/dev/null 2>&1 || { echo "not ok - $tool not found" >&2; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bulwark-sdk.XXXXXX")
pids=()
cleanup() {
    local pid
    for pid in ${pids[@]+"${pids[@]}"}; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in ${pids[@]+"${pids[@]}"}; do
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "${KEEP_SDK_TMP:-}" ]; then
        echo "kept $tmp"
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# run_child CMD…: runs CMD in the background and waits for it, so that a signal to this script
# is handled at once (and the trap stops CMD too); returns CMD's exit status.
run_child() {
    "$@" &
    local pid=$!
    pids+=("$pid")
    wait "$pid"
}

# --- the SDKs (in the background, while cargo builds the proxy) ----------------
mkdir -p "$tmp/js" "$tmp/py"
say "installing $JS_SDK (npm) and $PY_SDK (pip) into $tmp"
(
    cd "$tmp/js"
    exec timeout "$INSTALL_TIMEOUT" npm install --no-audit --no-fund --no-update-notifier --loglevel=error "$JS_SDK"
) >"$tmp/npm.log" 2>&1 &
npm_pid=$!
pids+=("$npm_pid")
PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1 \
    timeout "$INSTALL_TIMEOUT" python3 -m pip install --no-input --quiet --target "$tmp/py" "$PY_SDK" \
    >"$tmp/pip.log" 2>&1 &
pip_pid=$!
pids+=("$pip_pid")

# --- the proxy --------------------------------------------------------------------
say "building examples/notion_proxy.rs"
# --all-features: the same build `cargo test --workspace --all-features` made, so in CI this is
# a no-op. The JSON messages name the executable, wherever the target directory is.
run_child timeout "$BUILD_TIMEOUT" cargo build --locked --all-features --example notion_proxy \
    --message-format=json-render-diagnostics >"$tmp/build.json"
proxy_bin=$(python3 - "$tmp/build.json" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if msg.get("reason") == "compiler-artifact" and msg.get("target", {}).get("name") == "notion_proxy" and msg.get("executable"):
        print(msg["executable"])
EOF
)
[ -x "$proxy_bin" ] || { echo "not ok - the notion_proxy executable was not found" >&2; exit 1; }

failed=0
if ! wait "$npm_pid"; then
    echo "not ok - npm install $JS_SDK failed:"; cat "$tmp/npm.log"; failed=1
fi
if ! wait "$pip_pid"; then
    echo "not ok - pip install $PY_SDK failed:"; cat "$tmp/pip.log"; failed=1
fi
[ "$failed" -eq 0 ] || exit 1
say "installed @notionhq/client $(node -p "require('$tmp/js/node_modules/@notionhq/client/package.json').version")," \
    "notion-client $(PYTHONPATH="$tmp/py" python3 -c 'from importlib.metadata import version; print(version("notion-client"))')"

# start_proxy NAME ARGS… : starts a proxy with its own embedded FakeNotion, waits for its ready
# file and sets PROXY_URL / UPSTREAM_URL.
start_proxy() {
    local name=$1
    shift
    local ready="$tmp/$name.ready.json"
    "$proxy_bin" --port 0 --ready-file "$ready" "$@" >"$tmp/$name.log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    local deadline=$((SECONDS + READY_TIMEOUT))
    while [ ! -s "$ready" ]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "not ok - proxy $name exited before it was ready:"; cat "$tmp/$name.log"; exit 1
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "not ok - proxy $name not ready after ${READY_TIMEOUT}s:"; cat "$tmp/$name.log"; exit 1
        fi
        sleep 0.1
    done
    PROXY_URL=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["proxy"])' "$ready")
    UPSTREAM_URL=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["upstream"])' "$ready")
    say "proxy $name: $PROXY_URL -> $UPSTREAM_URL ($*)"
}

show_logs() {
    local name
    for name in "$@"; do
        echo "--- proxy $name log ---"
        cat "$tmp/$name.log"
    done
}

# --- JS ---------------------------------------------------------------------------
start_proxy js-main --max-retries 1
js_proxy=$PROXY_URL js_upstream=$UPSTREAM_URL
start_proxy js-reject --max-wait-ms 0
js_reject=$PROXY_URL

say "node .ci/sdk/conformance.mjs"
if ! run_child env NOTION_SDK_DIR="$tmp/js" NOTION_PROXY_URL="$js_proxy" NOTION_UPSTREAM_URL="$js_upstream" \
    NOTION_REJECT_PROXY_URL="$js_reject" timeout "$SCRIPT_TIMEOUT" node .ci/sdk/conformance.mjs; then
    failed=1
    show_logs js-main js-reject
fi

# --- Python -----------------------------------------------------------------------
start_proxy py-main --max-retries 1
py_proxy=$PROXY_URL py_upstream=$UPSTREAM_URL
start_proxy py-reject --max-wait-ms 0
py_reject=$PROXY_URL

say "python3 .ci/sdk/conformance.py"
if ! run_child env PYTHONPATH="$tmp/py" NOTION_PROXY_URL="$py_proxy" NOTION_UPSTREAM_URL="$py_upstream" \
    NOTION_REJECT_PROXY_URL="$py_reject" timeout "$SCRIPT_TIMEOUT" python3 .ci/sdk/conformance.py; then
    failed=1
    show_logs py-main py-reject
fi

if [ "$failed" -ne 0 ]; then
    say "FAILED: Notion SDK conformance"
    exit 1
fi
say "Notion SDK conformance passed"
