#!/usr/bin/env bash
# test_bench_url.sh - `kiln bench --url` against a real `kiln serve` on a
# free loopback port (a generated repository of one-Add models, one with
# dynamic batching): JSON levels at concurrency 1 and 8 (throughput > 0,
# p50 <= p99, zero errors, server-side batch size > 1 when batching), the
# binary tensor extension, the text report, batch-aware infer/s,
# perf_analyzer's habits (ranges, --batch-size, HOST:PORT), and the
# error paths: unreachable port, unknown model, bad URL, missing --model, a
# request the server refuses (exit 2 with a message), and a server killed
# mid-run (errors reported, exit 1, no hang); SIGINT; and a second, non-kiln
# KServe v2 server (fake_kserve_server.py: Triton's JSON shapes, chunked
# answers, injected 500s).  Ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/../.."
. tests/integration/lib_monitor.sh
KILN=build/kiln
PY=/usr/bin/python3
tmp=$(mktemp -d)
trap 'stop_started; rm -rf "$tmp"' EXIT

if [ ! -x "$KILN" ]; then
    fail "prerequisite $KILN" "missing (run make)"
    finish
    exit 1
fi

"$PY" - "$tmp/repo" <<'PY'
import os, sys, onnx
from onnx import helper, TensorProto
repo = sys.argv[1]
io = [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["N", 4]) for x in "ABC"]
g = helper.make_graph([helper.make_node("Add", ["A", "B"], ["C"])], "add", io[:2], io[2:])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
m.ir_version = 8
for name, cfg in (("batched", "max_batch_size: 8\ndynamic_batching { max_queue_delay_microseconds: 5000 }\n"),
                  ("plain", "max_batch_size: 8\n")):
    os.makedirs(f"{repo}/{name}/1")
    onnx.save(m, f"{repo}/{name}/1/model.onnx")
    open(f"{repo}/{name}/config.pbtxt", "w").write(f'name: "{name}"\n{cfg}')
PY

# start_serve LOG: starts kiln serve on a port the kernel picks; sets PORT.
start_serve() {
    PORT=""
    start "$1" "$KILN" serve --model-repository "$tmp/repo" --http-port 0 --metrics-port -1
    for _ in $(seq 1 150); do
        PORT=$(sed -n 's|.*KServe v2 HTTP on http://127.0.0.1:\([0-9]*\)/v2.*|\1|p' "$1" | head -1)
        [ -n "$PORT" ] && wait_http "http://127.0.0.1:$PORT/v2/health/ready" 10 && return 0
        sleep 0.1
    done
    return 1
}

# jcheck NAME FILE PYTHON-EXPRESSION: the expression over j (the JSON) holds.
jcheck() {
    local name=$1 file=$2 expr=$3
    if "$PY" -c "import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if ($expr) else 1)" "$file" 2>/dev/null
    then pass "$name"; else fail "$name" "$(head -c 600 "$file")"; fi
}

if ! start_serve "$tmp/serve.log"; then
    fail "kiln serve starts" "$(tail -5 "$tmp/serve.log")"
    finish
    exit 1
fi
URL="http://127.0.0.1:$PORT"

# concurrency 1 and 8 against the batching model, JSON
timeout 60 "$KILN" bench --url "$URL" --model batched --concurrency 1,8 --duration 2 --warmup 0.5 --json \
    >"$tmp/b.json" 2>"$tmp/b.err"
check "bench --url exits 0" [ $? = 0 ]
jcheck "two levels, concurrency 1 and 8" "$tmp/b.json" '[l["concurrency"] for l in j["levels"]] == [1, 8]'
jcheck "throughput > 0 at every level" "$tmp/b.json" 'all(l["throughput_per_s"] > 0 and l["requests"] > 0 for l in j["levels"])'
jcheck "p50 <= p90 <= p95 <= p99 <= max" "$tmp/b.json" \
    'all(0 < l["p50_ms"] <= l["p90_ms"] <= l["p95_ms"] <= l["p99_ms"] <= l["max_ms"] for l in j["levels"])'
jcheck "zero errors" "$tmp/b.json" 'all(l["errors"] == 0 and l["errors_by_status"] == {} for l in j["levels"])'
jcheck "server view present" "$tmp/b.json" \
    'all(l["server"]["inference_count"] > 0 and l["server"]["compute_infer_us"] >= 0 and l["server"]["queue_us"] > 0 for l in j["levels"])'
jcheck "server batch size > 1 at concurrency 8 (dynamic batching)" "$tmp/b.json" \
    'j["levels"][1]["server"]["avg_batch_size"] > 1.5'
jcheck "server batch size 1 at concurrency 1" "$tmp/b.json" 'j["levels"][0]["server"]["avg_batch_size"] == 1'
jcheck "server counts match the client's within the window" "$tmp/b.json" \
    'all(abs(l["server"]["inference_count"] - l["requests"]) <= 0.2 * l["requests"] + 50 for l in j["levels"])'
jcheck "thirds of the window add up to the whole" "$tmp/b.json" \
    'all(len(l["throughput_by_third"]) == 3 and abs(sum(l["throughput_by_third"]) / 3 - l["throughput_per_s"]) < 1e-6 * l["throughput_per_s"] + 1e-9 and isinstance(l["stable"], bool) for l in j["levels"])'
jcheck "send + wait + receive = average latency" "$tmp/b.json" \
    'all(abs(l["send_us"] + l["wait_us"] + l["receive_us"] - 1000 * l["avg_ms"]) <= 0.01 * 1000 * l["avg_ms"] and l["wait_us"] > 0 for l in j["levels"])'
jcheck "JSON names the model and the settings" "$tmp/b.json" \
    'j["model"] == "batched" and j["duration_s"] == 2 and j["batch_size"] == 1 and j["binary"] is False'

# binary tensor data, no batching, text report
timeout 60 "$KILN" bench --url "$URL/" --model plain --version 1 --concurrency 4 --duration 1 --warmup 0.2 --binary \
    >"$tmp/bin.txt" 2>&1
check "binary bench exits 0" [ $? = 0 ]
check "text report has the client section" grep -q "^    Throughput: [0-9.]* infer/sec" "$tmp/bin.txt"
check "text report has the server section" grep -q "Avg request latency: .*queue .*compute infer" "$tmp/bin.txt"
check "text report says binary" grep -q "binary tensor data" "$tmp/bin.txt"
check "text summary line" grep -q "^Concurrency: 4, throughput: [0-9.]* infer/sec.*errors 0, server batch 1.00" "$tmp/bin.txt"

# a batch of 3 per request counts 3 inferences
timeout 60 "$KILN" bench --url "$URL" --model plain --shape A=3x4 --shape B=3x4 --duration 0.5 --warmup 0 --json \
    >"$tmp/b3.json" 2>&1
jcheck "batch 3 per request: infer/s = 3 x requests/s" "$tmp/b3.json" \
    'j["batch_size"] == 3 and abs(j["levels"][0]["throughput_per_s"] - 3 * j["levels"][0]["requests_per_s"]) < 1e-6'

# perf_analyzer's habits: a concurrency range, --batch-size, HOST:PORT without http://
timeout 60 "$KILN" bench --url "127.0.0.1:$PORT" --model batched --concurrency 1:3:2 --batch-size 4 --duration 0.5 \
    --warmup 0.1 --json >"$tmp/pa.json" 2>&1
check "range, --batch-size, HOST:PORT: exits 0" [ $? = 0 ]
jcheck "range 1:3:2 gives levels 1 and 3" "$tmp/pa.json" '[l["concurrency"] for l in j["levels"]] == [1, 3]'
jcheck "--batch-size 4: four inferences per request, server batches >= 4" "$tmp/pa.json" \
    'j["batch_size"] == 4 and all(abs(l["throughput_per_s"] - 4 * l["requests_per_s"]) < 1e-6 and l["server"]["avg_batch_size"] >= 4 for l in j["levels"])'

# error paths
dead=$(free_port)
timeout 30 "$KILN" bench --url "http://127.0.0.1:$dead" --model batched >"$tmp/e1" 2>&1
check "unreachable port exits 2" [ $? = 2 ]
check "unreachable port is one line" [ "$(wc -l <"$tmp/e1")" = 1 ]
check "unreachable port is explained" grep -q "kiln bench: cannot reach http://127.0.0.1:$dead: .*Connection refused" "$tmp/e1"
timeout 30 "$KILN" bench --url "$URL" --model nosuch >"$tmp/e2" 2>&1
check "unknown model exits 2" [ $? = 2 ]
check "unknown model is explained" grep -q "kiln bench: model 'nosuch' is not available at $URL (HTTP 404" "$tmp/e2"
timeout 30 "$KILN" bench --url "$URL" --model batched --version 9 >"$tmp/e3" 2>&1
check "unknown version exits 2" [ $? = 2 ]
timeout 30 "$KILN" bench --url "ftp://127.0.0.1:$PORT" --model batched >"$tmp/e4" 2>&1
check "bad URL exits 2" [ $? = 2 ]
check "bad URL is explained" grep -q "bad --url 'ftp://127.0.0.1:$PORT': URL must start with http://" "$tmp/e4"
timeout 30 "$KILN" bench --url "$URL" >"$tmp/e5" 2>&1
check "missing --model exits 2" [ $? = 2 ]
timeout 30 "$KILN" bench --url "$URL" --model batched --shape A=2x3 >"$tmp/e6" 2>&1
check "a refused request exits 2" [ $? = 2 ]
check "a refused request shows the server's answer" grep -q "first infer request to model 'batched' failed (HTTP 400:" "$tmp/e6"
timeout 30 "$KILN" bench --url "$URL" --model batched --concurrency 1,x >"$tmp/e7" 2>&1
check "bad --concurrency exits 2" [ $? = 2 ]
timeout 30 "$KILN" bench --url "$URL" --model batched --input Z=/nonexistent.npy >"$tmp/e8" 2>&1
check "--input of an unknown name exits 2" [ $? = 2 ]

# a server killed in the middle of a level: errors, exit 1, no hang
if start_serve "$tmp/serve2.log"; then
    victim=$LAST_PID
    (sleep 1.5; kill -9 "$victim") &
    killer=$!
    t0=$SECONDS
    timeout 60 "$KILN" bench --url "http://127.0.0.1:$PORT" --model plain --concurrency 8 --duration 3 --warmup 0.2 \
        --timeout 2 --json >"$tmp/k.json" 2>"$tmp/k.err"
    rc=$?
    wait "$killer" 2>/dev/null
    wait "$victim" 2>/dev/null
    check "killed server: exit 1" [ "$rc" = 1 ]
    check "killed server: finishes in bounded time" [ $((SECONDS - t0)) -le 15 ]
    jcheck "killed server: errors reported" "$tmp/k.json" \
        'j["levels"][0]["errors"] > 0 and set(j["levels"][0]["errors_by_status"]) <= {"connect", "connection", "timeout"}'
    jcheck "killed server: successes before the kill still count" "$tmp/k.json" 'j["levels"][0]["requests"] > 0'
else
    fail "second kiln serve starts" "$(tail -5 "$tmp/serve2.log")"
fi

# SIGINT ends the run early and still prints what was measured
timeout 60 "$KILN" bench --url "$URL" --model plain --concurrency 2,2 --duration 20 --warmup 0.2 --json \
    >"$tmp/int.json" 2>&1 &
bench_pid=$!
sleep 1.5
kill -INT "$bench_pid"
t0=$SECONDS
wait "$bench_pid"
rc=$?
check "SIGINT: exits 0 promptly" test "$rc" = 0 -a $((SECONDS - t0)) -le 5
jcheck "SIGINT: one level, marked interrupted" "$tmp/int.json" \
    'j["interrupted"] is True and len(j["levels"]) == 1 and 0 < j["levels"][0]["duration_s"] < 5 and j["levels"][0]["requests"] > 0'

# another KServe v2 server (Triton's JSON shapes; chunked answers; injected 500s)
start "$tmp/fake.log" "$PY" tests/integration/fake_kserve_server.py
fport=""
for _ in $(seq 1 100); do
    fport=$(sed -n 's/^port \([0-9]*\)$/\1/p' "$tmp/fake.log")
    [ -n "$fport" ] && break
    sleep 0.1
done
for mode in json binary; do
    timeout 60 "$KILN" bench --url "http://127.0.0.1:$fport" --model other --concurrency 2 --duration 1 --warmup 0.2 \
        $([ $mode = binary ] && echo --binary) --json >"$tmp/o_$mode.json" 2>"$tmp/o_$mode.err"
    check "other server, $mode: exit 1 (injected failures)" [ $? = 1 ]
    jcheck "other server, $mode: successes measured" "$tmp/o_$mode.json" \
        'j["levels"][0]["requests"] > 0 and j["levels"][0]["p50_ms"] > 0 and j["batch_size"] == 1'
    jcheck "other server, $mode: the 500s counted by status" "$tmp/o_$mode.json" \
        'list(j["levels"][0]["errors_by_status"]) == ["500"] and j["levels"][0]["errors"] > 0'
    jcheck "other server, $mode: Triton-style stats read" "$tmp/o_$mode.json" \
        'abs(j["levels"][0]["server"]["queue_us"] - 1) < 1e-9 and abs(j["levels"][0]["server"]["compute_infer_us"] - 40) < 1e-9 and j["levels"][0]["server"]["avg_batch_size"] == 1'
done

# the local-model form is unchanged
"$KILN" bench "$tmp/repo/plain/1/model.onnx" --shape A=1x4 --shape B=1x4 --iters 5 --warmup 1 --json >"$tmp/local.json" 2>&1
jcheck "kiln bench MODEL still works" "$tmp/local.json" 'j["iters"] == 5 and j["p50_ms"] > 0'

finish
