#!/usr/bin/env bash
# test_dashboard.sh - opens kiln's /dashboard in headless Chromium (Debian's
# /usr/bin/chromium driven by playwright-core from web/node_modules) against
# a live `kiln monitor` on a free loopback port: once with no GPU (the page
# must say so and draw the host charts) and once with the fake NVML library
# (GPU charts drawn).  Also checks the asset routes from the shell: content
# types, no path traversal, and the 503 page when the assets are missing.
# Screenshots: build/dashboard.png, build/dashboard_gpu.png.
# Ends with "N passed, N failed"; exit status non-zero on any failure.
set -u
cd "$(dirname "$0")/../.."
. tests/integration/lib_monitor.sh
KILN=build/kiln
tmp=$(mktemp -d)
trap 'stop_started; rm -rf "$tmp"' EXIT

for need in "$KILN" /usr/bin/chromium web/node_modules/playwright-core build/dashboard/dashboard.html; do
    if [ ! -e "$need" ]; then
        fail "prerequisite $need" "missing (run make)"
        finish
        exit 1
    fi
done

cat >"$tmp/rules.yml" <<'RULES'
groups:
  - name: dashboard-test
    interval: 1s
    rules:
      - alert: HostAlive
        expr: nv_cpu_memory_total_bytes > 0
        labels:
          severity: info
        annotations:
          summary: "host has {{ $value | humanize }}B of memory"
RULES

# check_page NAME EXPECT_GPU SHOT PORT [EXPECT_MODELS]: the browser part.
check_page() {
    local name=$1 gpu=$2 shot=$3 port=$4 models=${5:-0}
    mkdir -p "$tmp/profile-$name"
    timeout 120 node tests/integration/dashboard_check.js "http://127.0.0.1:$port/dashboard" "$shot" "$gpu" \
        "$tmp/profile-$name" "$models" >"$tmp/$name.out" 2>&1
    while read -r line; do
        case "$line" in
        ok\ *) pass "$name: ${line#ok }" ;;
        FAIL\ *) fail "$name: ${line#FAIL }" ;;
        *) echo "  $line" ;;
        esac
    done <"$tmp/$name.out"
    grep -q '^ok ' "$tmp/$name.out" || fail "$name: browser check ran" "$(tail -5 "$tmp/$name.out")"
}

# run_dashboard NAME EXPECT_GPU SHOT [ENV...]: against `kiln monitor`.
run_dashboard() {
    local name=$1 gpu=$2 shot=$3
    shift 3
    local port
    port=$(free_port)
    start "$tmp/$name.log" env "$@" "$KILN" monitor --port "$port" --interval-ms 250 --alert-rules "$tmp/rules.yml"
    if ! wait_http "http://127.0.0.1:$port/metrics" 15; then
        fail "$name: kiln monitor starts" "$(tail -5 "$tmp/$name.log")"
        return
    fi
    sleep 1.5 # a few samples in the history
    check_page "$name" "$gpu" "$shot" "$port"
    PORT=$port
}

run_dashboard no-gpu 0 build/dashboard.png KILN_NVML_LIBRARY=/nonexistent/libnvidia-ml.so.1
base="http://127.0.0.1:$PORT"
ctype() { curl -s -o /dev/null -w '%{http_code} %{content_type}' "$base$1"; }
check "page is html" [ "$(ctype /dashboard)" = "200 text/html; charset=utf-8" ]
check "script is javascript" [ "$(ctype /dashboard/dashboard.js)" = "200 text/javascript; charset=utf-8" ]
check "uPlot is served locally" [ "$(ctype /dashboard/uPlot.iife.min.js | cut -d' ' -f1)" = 200 ]
check "no path traversal" [ "$(curl -s -o /dev/null -w '%{http_code}' --path-as-is "$base/dashboard/../../etc/passwd")" = 404 ]
check "no dot files" [ "$(curl -s -o /dev/null -w '%{http_code}' "$base/dashboard/.stamp")" = 404 ]
check "unknown asset is 404" [ "$(curl -s -o /dev/null -w '%{http_code}' "$base/dashboard/nope.js")" = 404 ]
check "POST refused" [ "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$base/dashboard")" = 405 ]
stop_started

if [ -e build/tests/libfake_nvml.so ]; then
    cat >"$tmp/gpu.script" <<'NVML'
gpus 2
gpu all utilization 40 20 1
gpu 1 temperature 60 1
gpu 0 temperature 70 0
NVML
    run_dashboard fake-gpu 1 build/dashboard_gpu.png KILN_NVML_LIBRARY=build/tests/libfake_nvml.so \
        KILN_FAKE_NVML_SCRIPT="$tmp/gpu.script"
    stop_started
else
    fail "fake NVML library" "build/tests/libfake_nvml.so missing (make unit builds it)"
fi

# A model served by `kiln serve` under load: the model charts fill in.
if [ -e build/models/demo_mlp.onnx ]; then
    mkdir -p "$tmp/repo/demo_mlp/1"
    cp build/models/demo_mlp.onnx "$tmp/repo/demo_mlp/1/model.onnx"
    hport=$(free_port)
    mport=$(free_port)
    start "$tmp/serve.log" env KILN_NVML_LIBRARY=/nonexistent "$KILN" serve --model-repository "$tmp/repo" \
        --http-port "$hport" --metrics-port "$mport" --alert-rules "$tmp/rules.yml"
    if wait_http "http://127.0.0.1:$hport/v2/models/demo_mlp/ready" 30 && wait_http "http://127.0.0.1:$mport/metrics" 10; then
        body='{"inputs":[{"name":"input","shape":[1,16],"datatype":"FP32","data":[0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1,1.1,1.2,1.3,1.4,1.5,1.6]}]}'
        load() { # requests until killed, a few hundred a second at most
            while :; do
                curl -s -o /dev/null --max-time 2 -H 'Content-Type: application/json' -d "$body" \
                    "http://127.0.0.1:$hport/v2/models/demo_mlp/infer"
                sleep 0.02
            done
        }
        load &
        STARTED_PIDS+=($!)
        sleep 3
        check_page serve 0 build/dashboard_models.png "$mport" 1
    else
        fail "kiln serve starts" "$(tail -5 "$tmp/serve.log")"
    fi
    stop_started
else
    fail "demo model" "build/models/demo_mlp.onnx missing (make builds it)"
fi

# Without assets the page says where it looked, with 503.
port=$(free_port)
mkdir -p "$tmp/empty"
start "$tmp/noassets.log" env KILN_DASHBOARD_DIR="$tmp/empty" KILN_NVML_LIBRARY=/nonexistent "$KILN" monitor --port "$port"
if wait_http "http://127.0.0.1:$port/metrics" 15; then
    body=$(curl -s -w ' %{http_code}' "http://127.0.0.1:$port/dashboard")
    check "missing assets answer 503" [ "${body##* }" = 503 ]
    check "missing assets page explains" grep -q "assets not found" <<<"$body"
else
    fail "kiln monitor without assets starts"
fi
stop_started
finish
