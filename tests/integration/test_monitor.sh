#!/usr/bin/env bash
# test_monitor.sh - `kiln monitor` end to end on free loopback ports, with
# the fake NVML library (build/tests/libfake_nvml.so) standing in for a GPU:
#   - /metrics passes `promtool check metrics` (apart from the lints that
#     Triton's own metric names trip) and carries the right units
#     (power in W from NVML's mW, utilization 0..1);
#   - a real Prometheus scrapes it and its own API returns a kiln series;
#   - the history survives kill -9: start, sample, kill -9, reopen, and
#     /api/v1/query_range still returns the earlier samples (and SQLite's
#     integrity check passes);
#   - a GPU that falls off the bus shows kiln_gpu_up 0 and kiln keeps going;
#   - SIGTERM exits 0; bad flags, an unusable history file and a bad rules
#     file exit 2 with a message.
# Bounded in time; kills exactly what it started.  Last line: "N passed, N failed".
set -u
cd "$(dirname "$0")/../.."
. tests/integration/lib_monitor.sh

KILN=build/kiln
FAKE=build/tests/libfake_nvml.so
tmp=$(mktemp -d)
cleanup() { stop_started; rm -rf "$tmp"; }
trap cleanup EXIT

if [ ! -x "$KILN" ] || [ ! -e "$FAKE" ]; then
    fail "prerequisites" "$KILN or $FAKE missing (make all unit builds them)"
    finish
    exit 1
fi

cat >"$tmp/nvml.txt" <<'SCRIPT'
gpus 2
gpu 0 uuid GPU-11111111-2222-3333-4444-555555555555
gpu 0 name Fake H100
gpu 0 utilization 40 10
gpu 0 power 150000
gpu 0 power_limit 350000
gpu 0 temperature 50 1
gpu 0 energy 0 100000
gpu 1 uuid GPU-66666666-7777-8888-9999-000000000000
gpu 1 unsupported fan
gpu 1 lost_from_step 4
SCRIPT
export KILN_FAKE_NVML_SCRIPT="$tmp/nvml.txt" KILN_NVML_LIBRARY="$FAKE"

# start_kiln NAME ARGS...: starts kiln monitor on a free port; sets KPORT, KPID.
start_kiln() {
    local name=$1
    shift
    KPORT=$(free_port)
    start "$tmp/$name.log" "$KILN" monitor --host 127.0.0.1 --port "$KPORT" "$@"
    KPID=$LAST_PID
    wait_http "http://127.0.0.1:$KPORT/metrics" 10
}

# metric NAME_WITH_LABELS: the value of one exposition line of /metrics.
metric() {
    curl -s --max-time 5 "http://127.0.0.1:$KPORT/metrics" | awk -v k="$1 " 'index($0, k) == 1 { print $NF }'
}

# ---- /metrics: format and units --------------------------------------------
if start_kiln first --interval-ms 200 --history "$tmp/history.db"; then
    pass "kiln monitor starts with the fake NVML"
else
    fail "kiln monitor starts with the fake NVML" "$(tail -5 "$tmp/first.log")"
fi
check "startup line names the address" grep -q "listening on http://127.0.0.1:$KPORT" "$tmp/first.log"
curl -s --max-time 5 "http://127.0.0.1:$KPORT/metrics" >"$tmp/metrics.txt"
promtool check metrics <"$tmp/metrics.txt" >"$tmp/promtool.txt" 2>&1
# Lints that Triton's names (kept for compatibility) trip are expected; anything else is not.
if grep -v -E '^(nv_energy_consumption|nv_inference_[a-z_]+) ' "$tmp/promtool.txt" | grep -q .; then
    fail "promtool check metrics" "$(cat "$tmp/promtool.txt")"
else
    pass "promtool check metrics"
fi
U0='{gpu_uuid="GPU-11111111-2222-3333-4444-555555555555"}'
check "nv_gpu_power_usage is watts (150000 mW -> 150)" test "$(metric "nv_gpu_power_usage$U0")" = 150
check "nv_gpu_power_limit is watts" test "$(metric "nv_gpu_power_limit$U0")" = 350
check "nv_gpu_utilization is 0..1 (40% -> 0.4)" test "$(metric "nv_gpu_utilization$U0")" = 0.4
check "temperature exported" test -n "$(metric "kiln_gpu_temperature_celsius$U0")"
check "HELP and TYPE lines" grep -q '^# TYPE nv_gpu_memory_used_bytes gauge$' "$tmp/metrics.txt"
check "energy is a counter" grep -q '^# TYPE nv_energy_consumption counter$' "$tmp/metrics.txt"
check "host CPU metrics" grep -q '^nv_cpu_memory_total_bytes ' "$tmp/metrics.txt"
check "unsupported fan left out" bash -c "! grep -q 'kiln_gpu_fan_speed_ratio{gpu_uuid=\"GPU-6666' '$tmp/metrics.txt'"

# ---- a GPU falls off the bus (fake: from its 5th sample) --------------------
U1='{gpu_uuid="GPU-66666666-7777-8888-9999-000000000000",gpu_index="1",name="Kiln Fake GPU"}'
lost() { [ "$(metric "kiln_gpu_up$U1")" = 0 ]; }
check "lost GPU reported as kiln_gpu_up 0" wait_for 10 lost
check "lost GPU said once in the log" test "$(grep -c 'fell off the bus' "$tmp/first.log")" = 1
check "kiln still serves after the GPU is lost" test "$(metric "nv_gpu_power_usage$U0")" = 150

# ---- a real Prometheus scrapes kiln ------------------------------------------
PPORT=$(free_port)
cat >"$tmp/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: kiln
    static_configs:
      - targets: ['127.0.0.1:$KPORT']
YAML
start "$tmp/prometheus.log" prometheus --config.file="$tmp/prometheus.yml" \
    --storage.tsdb.path="$tmp/prom-data" --web.listen-address="127.0.0.1:$PPORT" \
    --log.level=warn
PROM_PID=$LAST_PID
prom_has_series() {
    curl -s --max-time 2 "http://127.0.0.1:$PPORT/api/v1/query?query=nv_gpu_power_usage" |
        python3 -c 'import json,sys; d=json.load(sys.stdin); r=d["data"]["result"]; sys.exit(0 if d["status"]=="success" and any(abs(float(x["value"][1])-150)<1e-9 and x["metric"]["job"]=="kiln" for x in r) else 1)' 2>/dev/null
}
check "Prometheus scrapes kiln (its API returns nv_gpu_power_usage = 150)" wait_for 40 prom_has_series
prom_target_up() {
    curl -s --max-time 2 "http://127.0.0.1:$PPORT/api/v1/targets" | grep -q '"health":"up"'
}
check "Prometheus sees the kiln target up" prom_target_up
kill "$PROM_PID" 2>/dev/null

# ---- the same JSON shape from kiln's own API ---------------------------------
now=$(date +%s)
curl -s --max-time 5 "http://127.0.0.1:$KPORT/api/v1/query_range" \
    --data-urlencode "query=nv_gpu_power_usage$U0" --data-urlencode "start=$((now - 60))" \
    --data-urlencode "end=$now" --data-urlencode "step=1" >"$tmp/range.json"
check "query_range (POST form) answers a Prometheus matrix" python3 -c '
import json,sys
d=json.load(open(sys.argv[1]))
r=d["data"]["result"]
assert d["status"]=="success" and d["data"]["resultType"]=="matrix" and len(r)==1
assert r[0]["metric"]["__name__"]=="nv_gpu_power_usage"
assert all(v[1]=="150" for v in r[0]["values"]) and len(r[0]["values"])>=1
' "$tmp/range.json"

# ---- kill -9, reopen, the history is still there ------------------------------
sleep 1.5
killed_at=$(date +%s)
kill -9 "$KPID"
wait "$KPID" 2>/dev/null
check "history file passes SQLite's integrity check after kill -9" \
    test "$(sqlite3 "$tmp/history.db" 'PRAGMA integrity_check' 2>&1)" = ok
if start_kiln second --interval-ms 1000 --history "$tmp/history.db"; then
    pass "kiln monitor reopens the history after kill -9"
else
    fail "kiln monitor reopens the history after kill -9" "$(tail -5 "$tmp/second.log")"
fi
curl -s --max-time 5 -G "http://127.0.0.1:$KPORT/api/v1/query_range" \
    --data-urlencode "query=kiln_gpu_temperature_celsius$U0" --data-urlencode "start=$((killed_at - 30))" \
    --data-urlencode "end=$killed_at" --data-urlencode "step=0.2" >"$tmp/after.json"
check "query_range returns the samples from before the kill" python3 -c '
import json,sys
d=json.load(open(sys.argv[1])); killed=float(sys.argv[2])
vals=d["data"]["result"][0]["values"]
assert len(vals) >= 5, len(vals)
assert all(t <= killed for t,_ in vals)
assert float(vals[-1][1]) >= float(vals[0][1])   # the temperature ramp
' "$tmp/after.json" "$killed_at"
check "series lists the GPUs from before the kill" bash -c \
    "curl -s -G 'http://127.0.0.1:$KPORT/api/v1/series' --data-urlencode 'match[]=nv_gpu_utilization' | grep -q GPU-66666666"

# ---- SIGTERM is a clean stop ---------------------------------------------------
kill -TERM "$KPID"
wait "$KPID"
check "SIGTERM stops kiln monitor with exit 0" test $? -eq 0

# ---- SIGINT too, and --help ------------------------------------------------------
if start_kiln third --interval-ms 500; then
    kill -INT "$KPID"
    wait "$KPID"
    check "SIGINT stops kiln monitor with exit 0" test $? -eq 0
else
    fail "kiln monitor starts without a history file" "$(tail -5 "$tmp/third.log")"
fi
check "kiln monitor --help exits 0 and names the flags" bash -c "'$KILN' monitor --help | grep -q -- --alertmanager-url"
check "kiln --help lists monitor" bash -c "'$KILN' --help | grep -q '^  monitor '"

# ---- bad input exits 2 with a message ------------------------------------------
bad() {
    local name=$1
    shift
    timeout -k 2 10 "$KILN" monitor --port 0 "$@" >"$tmp/bad.out" 2>&1
    local rc=$?
    if [ $rc -eq 2 ] && grep -q "kiln monitor:" "$tmp/bad.out"; then pass "$name"; else fail "$name" "exit $rc: $(cat "$tmp/bad.out")"; fi
}
bad "--port abc exits 2" --port abc
bad "--interval-ms 0 exits 2" --interval-ms 0
bad "unknown flag exits 2" --bogus
bad "missing value exits 2" --history
echo "not sqlite at all, only text ..................................................." >"$tmp/text.db"
bad "a history file that is not SQLite exits 2" --history "$tmp/text.db"
printf 'groups:\n  - name: g\n    rules:\n      - alert: X\n        expr: "up >"\n' >"$tmp/rules.yml"
bad "a bad alert rules file exits 2" --alert-rules "$tmp/rules.yml"

finish
