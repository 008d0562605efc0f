#!/usr/bin/env bash
# test_top.sh - `kiln top` against a live `kiln monitor` (fake NVML GPU, an
# always-firing alert rule) on a free loopback port: --once text output, bad
# arguments, and the real ncurses screen inside a private tmux server
# (tmux send-keys / capture-pane): the screen shows host, GPU, alert, and
# `q` quits.  Ends with "N passed, N failed"; non-zero exit on failure.
set -u
cd "$(dirname "$0")/../.."
. tests/integration/lib_monitor.sh
KILN=build/kiln
FAKE=build/tests/libfake_nvml.so
tmp=$(mktemp -d)
sock="kiln-top-test-$$"
trap 'tmux -L "$sock" kill-server 2>/dev/null; stop_started; rm -rf "$tmp"' EXIT

for need in "$KILN" "$FAKE" /usr/bin/tmux; do
    if [ ! -e "$need" ]; then
        fail "prerequisite $need" "missing (run make test)"
        finish
        exit 1
    fi
done

cat >"$tmp/rules.yml" <<'RULES'
groups:
  - name: top
    interval: 200ms
    rules:
      - alert: HostAlive
        expr: nv_cpu_memory_total_bytes > 0
        annotations:
          summary: "the host is up"
RULES
printf 'gpus 1\ngpu 0 temperature 77 0\ngpu 0 utilization 55 10\n' >"$tmp/gpu.script"
port=$(free_port)
start "$tmp/kiln.log" env KILN_NVML_LIBRARY="$FAKE" KILN_FAKE_NVML_SCRIPT="$tmp/gpu.script" \
    "$KILN" monitor --port "$port" --interval-ms 200 --alert-rules "$tmp/rules.yml"
URL="http://127.0.0.1:$port"
if ! wait_http "$URL/metrics" 15; then
    fail "kiln monitor starts" "$(tail -5 "$tmp/kiln.log")"
    finish
    exit 1
fi
sleep 1

"$KILN" top --once --url "$URL" >"$tmp/once.out" 2>&1
check "--once exits 0" [ $? = 0 ]
check "--once shows the GPU" grep -q "^gpu 0 GPU-fake-0000 Kiln Fake GPU  util 55%.*temp 77 C" "$tmp/once.out"
check "--once shows host memory" grep -q "^host  cpu .*memory .* / " "$tmp/once.out"
check "--once shows the firing alert" grep -q "^alert firing HostAlive .*the host is up" "$tmp/once.out"
"$KILN" top --once --local >"$tmp/local.out" 2>&1
check "--local samples this host" grep -q "^kiln top  local sampling" "$tmp/local.out"
"$KILN" top --interval-ms 5 >"$tmp/bad.out" 2>&1
check "bad --interval-ms exits 2" [ $? = 2 ]
check "bad --interval-ms is explained" grep -q "interval-ms must be a whole number from 100 to 60000" "$tmp/bad.out"
"$KILN" top --url ftp://x >"$tmp/bad2.out" 2>&1
check "bad --url exits 2" [ $? = 2 ]
"$KILN" top --once --url "http://127.0.0.1:$(free_port)" >"$tmp/dead.out" 2>&1
check "unreachable --url exits 1" [ $? = 1 ]
check "unreachable --url is explained" grep -q "cannot connect to 127.0.0.1" "$tmp/dead.out"

# The live screen, inside tmux.
tmux -L "$sock" -f /dev/null new-session -d -s top -x 132 -y 46 \
    "env TERM=screen-256color LANG=C.UTF-8 $KILN top --url $URL --interval-ms 300"
screen_has() { tmux -L "$sock" capture-pane -p -t top 2>/dev/null | grep -q -- "$1"; }
check "screen shows the header" wait_for 10 screen_has "kiln top  $URL"
check "screen shows the host" screen_has "HOST"
check "screen shows the GPU" screen_has "GPU-fake-0000"
check "screen shows the GPU temperature" screen_has "temp 77 C"
check "screen shows the firing alert" wait_for 5 screen_has "firing   HostAlive"
tmux -L "$sock" capture-pane -p -t top >build/top_screen.txt 2>/dev/null
tmux -L "$sock" send-keys -t top q
gone() { ! tmux -L "$sock" has-session -t top 2>/dev/null; }
check "q quits" wait_for 5 gone
tmux -L "$sock" kill-server 2>/dev/null
stop_started
finish
