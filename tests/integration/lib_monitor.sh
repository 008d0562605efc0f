# lib_monitor.sh - helpers shared by the monitoring integration tests
# (sourced, not run): pass/fail counting, free loopback ports, starting a
# process in the background and killing exactly what was started.
# Each test sources it, calls `finish` at the end for the closing line.

PASSED=0
FAILED=0
STARTED_PIDS=()

pass() { PASSED=$((PASSED + 1)); echo "ok $1"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL $1${2:+: $2}"; }

# check NAME COMMAND...: passes when the command succeeds.
check() {
    local name=$1
    shift
    if "$@"; then pass "$name"; else fail "$name"; fi
}

# A TCP port on 127.0.0.1 that nothing listens on right now, never one this
# script handed out before (two quick calls could otherwise return the same).
# The ports given are kept in a file: $(free_port) runs in a subshell.
GIVEN_PORTS_FILE=$(mktemp)
free_port() {
    local p
    while :; do
        p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
        grep -qx "$p" "$GIVEN_PORTS_FILE" && continue
        echo "$p" >>"$GIVEN_PORTS_FILE"
        echo "$p"
        return
    done
}

# start LOGFILE COMMAND...: runs it in the background, remembers its pid.
start() {
    local log=$1
    shift
    "$@" >"$log" 2>&1 &
    STARTED_PIDS+=($!)
    LAST_PID=$!
}

# wait_http URL SECONDS: until the URL answers 2xx, or fail.
wait_http() {
    local url=$1 deadline=$((SECONDS + $2))
    while [ $SECONDS -lt $deadline ]; do
        curl -sf -o /dev/null --max-time 2 "$url" && return 0
        sleep 0.2
    done
    return 1
}

# wait_for SECONDS COMMAND...: polls the command until it succeeds.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    while [ $SECONDS -lt $deadline ]; do
        "$@" && return 0
        sleep 0.3
    done
    return 1
}

stop_started() {
    local p
    for p in "${STARTED_PIDS[@]}"; do
        kill "$p" 2>/dev/null
    done
    for p in "${STARTED_PIDS[@]}"; do
        for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null
    done
    STARTED_PIDS=()
}

finish() {
    rm -f "$GIVEN_PORTS_FILE"
    echo "$PASSED passed, $FAILED failed"
    [ "$FAILED" -eq 0 ]
}
