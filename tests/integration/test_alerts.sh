#!/usr/bin/env bash
# test_alerts.sh - kiln's alerting end to end, on loopback only:
#   - `promtool check rules` accepts the shipped examples/alert_rules.yml,
#     and kiln loads it too;
#   - a bad rule file and a bad URL are refused with exit 2 and a message
#     naming the place (file:line:column);
#   - with the fake NVML library ramping GPU temperatures, a real
#     Alertmanager (Debian's prometheus-alertmanager, temp config and
#     --storage.path) receives kiln's firing alert and lists it under
#     /api/v2/alerts; a local webhook receiver (tests/integration/
#     webhook_receiver.py, failing its first POST to exercise the retry)
#     gets version-4 payloads, firing then resolved; /metrics has ALERTS;
#     /api/v1/alerts has Prometheus's shape; transitions are in the history;
#   - a notifier pointed at a dead port never stalls the sampler.
# Ends with "N passed, N failed"; exit status non-zero on any failure.
set -u
cd "$(dirname "$0")/../.."
. tests/integration/lib_monitor.sh
KILN=build/kiln
FAKE=build/tests/libfake_nvml.so
tmp=$(mktemp -d)
trap 'stop_started; rm -rf "$tmp"' EXIT

for need in "$KILN" "$FAKE" /usr/bin/prometheus-alertmanager /usr/bin/promtool; do
    if [ ! -e "$need" ]; then
        fail "prerequisite $need" "missing (run make test, which installs and builds it)"
        finish
        exit 1
    fi
done

# ---- rule files ---------------------------------------------------------------
check "promtool accepts examples/alert_rules.yml" promtool check rules examples/alert_rules.yml
port=$(free_port)
start "$tmp/example.log" env KILN_NVML_LIBRARY=/nonexistent "$KILN" monitor --port "$port" \
    --alert-rules examples/alert_rules.yml
if wait_http "http://127.0.0.1:$port/api/v1/rules" 15; then
    n=$(curl -s "http://127.0.0.1:$port/api/v1/rules" |
        python3 -c 'import json,sys; print(sum(len(g["rules"]) for g in json.load(sys.stdin)["data"]["groups"]))')
    check "kiln loads the 7 example rules" [ "$n" = 7 ]
else
    fail "kiln monitor starts with the example rules" "$(tail -3 "$tmp/example.log")"
fi
stop_started

cat >"$tmp/bad.yml" <<'BAD'
groups:
  - name: bad
    rules:
      - alert: Bad
        expr: sum(kiln_gpu_temperature_celsius) > 85
BAD
"$KILN" monitor --port "$(free_port)" --alert-rules "$tmp/bad.yml" >"$tmp/bad.out" 2>&1
status=$?
check "bad expr exits 2" [ "$status" = 2 ]
check "bad expr names file:line:column" grep -q "bad.yml:5:15: rule 'Bad': expr character 1: function 'sum'" "$tmp/bad.out"
# sum() is valid PromQL, so promtool accepts what kiln's narrower subset refuses.
check "promtool accepts what kiln refuses (kiln's subset is narrower)" promtool check rules "$tmp/bad.yml"
printf 'groups:\n  - name: x\n    rules: [\n' >"$tmp/broken.yml"
"$KILN" monitor --port "$(free_port)" --alert-rules "$tmp/broken.yml" >"$tmp/broken.out" 2>&1
status=$?
check "malformed YAML exits 2" [ "$status" = 2 ]
check "malformed YAML names its line" grep -q "broken.yml:4:1: YAML error" "$tmp/broken.out"
"$KILN" monitor --port "$(free_port)" --alertmanager-url https://127.0.0.1:1 >"$tmp/url.out" 2>&1
status=$?
check "https URL refused with exit 2" [ "$status" = 2 ]
check "bad URL message names the flag" grep -q -- "--alertmanager-url https://127.0.0.1:1: https is not supported" "$tmp/url.out"

# ---- receivers ------------------------------------------------------------------
am_port=$(free_port)
cat >"$tmp/am.yml" <<'AM'
route:
  receiver: blackhole
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: blackhole
AM
mkdir -p "$tmp/am-data"
start "$tmp/am.log" /usr/bin/prometheus-alertmanager --config.file="$tmp/am.yml" --storage.path="$tmp/am-data" \
    --web.listen-address="127.0.0.1:$am_port" --cluster.listen-address=
wh_port=$(free_port)
start "$tmp/wh.log" python3 tests/integration/webhook_receiver.py "$wh_port" "$tmp/hooks.jsonl" --fail-first 1
if ! wait_http "http://127.0.0.1:$am_port/-/ready" 30; then
    fail "alertmanager starts" "$(tail -5 "$tmp/am.log")"
fi
wait_http "http://127.0.0.1:$wh_port/count" 10 || fail "webhook receiver starts" "$(tail -5 "$tmp/wh.log")"

# ---- kiln with a fake GPU heating up and another cooling down ----------------------
cat >"$tmp/gpu.script" <<'NVML'
gpus 2
gpu 0 temperature 80 1
gpu 1 temperature 95 -1
NVML
cat >"$tmp/rules.yml" <<'RULES'
groups:
  - name: gpu
    interval: 300ms
    rules:
      - alert: GpuHot
        expr: kiln_gpu_temperature_celsius{gpu_uuid="GPU-fake-0000"} > 83
        for: 1s
        labels:
          severity: page
        annotations:
          summary: "GPU {{ $labels.gpu_uuid }} at {{ $value }} C"
      - alert: GpuCooling
        expr: max_over_time(kiln_gpu_temperature_celsius{gpu_uuid="GPU-fake-0001"}[1s]) > 92
        labels:
          severity: info
RULES
kport=$(free_port)
start "$tmp/kiln.log" env KILN_NVML_LIBRARY="$FAKE" KILN_FAKE_NVML_SCRIPT="$tmp/gpu.script" \
    "$KILN" monitor --port "$kport" --interval-ms 300 --alert-rules "$tmp/rules.yml" \
    --alertmanager-url "http://127.0.0.1:$am_port" --alert-webhook "http://127.0.0.1:$wh_port/hook"
K="http://127.0.0.1:$kport"
wait_http "$K/metrics" 15 || fail "kiln monitor starts" "$(tail -5 "$tmp/kiln.log")"

alert_state() { # alert_state NAME -> prints pending|firing|none
    curl -s "$K/api/v1/alerts" | python3 -c '
import json, sys
alerts = [a for a in json.load(sys.stdin)["data"]["alerts"] if a["labels"]["alertname"] == sys.argv[1]]
print(alerts[0]["state"] if alerts else "none")' "$1"
}
saw_pending=0
deadline=$((SECONDS + 20))
while [ $SECONDS -lt $deadline ]; do
    s=$(alert_state GpuHot)
    [ "$s" = pending ] && saw_pending=1
    [ "$s" = firing ] && break
    sleep 0.1
done
check "GpuHot went through pending" [ "$saw_pending" = 1 ]
check "GpuHot fires" [ "$(alert_state GpuHot)" = firing ]

api=$(curl -s "$K/api/v1/alerts")
check "/api/v1/alerts has Prometheus's shape" python3 -c '
import json, sys
d = json.loads(sys.argv[1])
assert d["status"] == "success"
a = [x for x in d["data"]["alerts"] if x["labels"]["alertname"] == "GpuHot"][0]
assert set(a) >= {"labels", "annotations", "state", "activeAt", "value"}, a
assert a["labels"] == {"alertname": "GpuHot", "gpu_uuid": "GPU-fake-0000", "severity": "page"}, a["labels"]
assert a["annotations"]["summary"].startswith("GPU GPU-fake-0000 at "), a
assert a["activeAt"].endswith("Z") and float(a["value"]) > 83
' "$api"
check "ALERTS in /metrics" grep -q 'ALERTS{alertname="GpuHot",alertstate="firing",gpu_uuid="GPU-fake-0000",severity="page"} 1' \
    <(curl -s "$K/metrics")

am_has() { # am_has NAME: the Alertmanager lists it as active
    curl -s "http://127.0.0.1:$am_port/api/v2/alerts" | python3 -c '
import json, sys
alerts = [a for a in json.load(sys.stdin) if a["labels"].get("alertname") == sys.argv[1]]
sys.exit(0 if alerts and alerts[0]["status"]["state"] == "active" else 1)' "$1"
}
check "Alertmanager lists GpuHot as active" wait_for 15 am_has GpuHot
check "Alertmanager got labels and annotations" python3 -c '
import json, sys, urllib.request
alerts = json.load(urllib.request.urlopen("http://127.0.0.1:%s/api/v2/alerts" % sys.argv[1]))
a = [x for x in alerts if x["labels"].get("alertname") == "GpuHot"][0]
assert a["labels"]["severity"] == "page" and a["labels"]["gpu_uuid"] == "GPU-fake-0000", a
assert a["annotations"]["summary"].startswith("GPU GPU-fake-0000"), a
assert a["generatorURL"].endswith("/dashboard"), a
' "$am_port"

# GpuCooling fired at once (95 C, for: 0) and resolves as GPU 1 cools below 92.
hooks_have() { # hooks_have ALERTNAME STATUS
    [ -f "$tmp/hooks.jsonl" ] && python3 -c '
import json, sys
for line in open(sys.argv[1]):
    b = json.loads(line)["body"]
    if b["groupLabels"].get("alertname") == sys.argv[2] and b["status"] == sys.argv[3]:
        sys.exit(0)
sys.exit(1)' "$tmp/hooks.jsonl" "$1" "$2"
}
check "webhook got GpuCooling firing" wait_for 15 hooks_have GpuCooling firing
check "webhook got GpuCooling resolved" wait_for 15 hooks_have GpuCooling resolved
check "webhook got GpuHot firing" wait_for 10 hooks_have GpuHot firing
check "webhook payload is Alertmanager's version 4" python3 -c '
import json, sys
for line in open(sys.argv[1]):
    rec = json.loads(line)
    b = rec["body"]
    if b["groupLabels"].get("alertname") != "GpuCooling" or b["status"] != "resolved":
        continue
    assert rec["path"] == "/hook", rec["path"]
    assert b["version"] == "4" and b["receiver"] and b["groupKey"] == "{}:{alertname=\"GpuCooling\"}", b
    assert b["externalURL"].startswith("http://"), b
    assert b["commonLabels"] == {"alertname": "GpuCooling", "gpu_uuid": "GPU-fake-0001", "severity": "info"}, b
    assert "commonAnnotations" in b and "truncatedAlerts" in b
    a = b["alerts"][0]
    assert a["status"] == "resolved" and a["endsAt"] > a["startsAt"], a
    assert len(a["fingerprint"]) == 16
    sys.exit(0)
sys.exit(1)
' "$tmp/hooks.jsonl"
check "webhook retried after its first 503" python3 -c '
import json, sys, urllib.request
s = json.load(urllib.request.urlopen("http://127.0.0.1:%s/count" % sys.argv[1]))
assert s["posts"] > s["kept"] >= 1, s
' "$wh_port"
am_resolved() { ! am_has GpuCooling; }
check "Alertmanager no longer lists GpuCooling as active" wait_for 15 am_resolved

history_has() {
    now=$(date +%s)
    curl -s "$K/api/v1/query_range" --data-urlencode 'query=kiln_alert_transition{alertname="GpuCooling",to="resolved"}' \
        --data-urlencode "start=$((now - 120))" --data-urlencode "end=$now" --data-urlencode step=1s -G |
        grep -q '"to":"resolved"'
}
check "transitions are in the history" wait_for 10 history_has
stop_started

# ---- a dead receiver never stalls the sampler --------------------------------------------
dead=$(free_port)
kport=$(free_port)
cat >"$tmp/always.yml" <<'RULES'
groups:
  - name: always
    interval: 100ms
    rules:
      - alert: Always
        expr: nv_cpu_memory_total_bytes > 0
RULES
start "$tmp/dead.log" env KILN_NVML_LIBRARY=/nonexistent "$KILN" monitor --port "$kport" --interval-ms 100 \
    --alert-rules "$tmp/always.yml" --alertmanager-url "http://127.0.0.1:$dead" --alert-webhook "http://127.0.0.1:$dead/x"
K="http://127.0.0.1:$kport"
if wait_http "$K/metrics" 15; then
    samples() { curl -s --max-time 2 "$K/metrics" | awk '/^kiln_monitor_samples_total/ {print int($2)}'; }
    a=$(samples)
    sleep 2
    b=$(samples)
    check "sampler keeps sampling with a dead receiver (${a:-?} -> ${b:-?})" [ -n "$a" ] && [ -n "$b" ] && [ "$((b - a))" -ge 10 ]
    check "alert still served" [ "$(alert_state Always)" = firing ]
else
    fail "kiln monitor starts with a dead receiver"
fi
stop_started
finish
