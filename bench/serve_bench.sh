#!/usr/bin/env bash
# serve_bench.sh - measures kiln serve (make bench-serve) and writes the
# "serve" section of docs/PERFORMANCE.md.
#
#  1. A tiny model (one Add) at 64 connections with wrk: requests/s, p50 and
#     p99; beside it, in the same run, nginx answering a static 200 on the
#     same machine, as the ceiling for any HTTP server here; and kiln's own
#     load generator (kiln bench --url, perf_analyzer's role) on the same
#     model, so its numbers can be read against wrk's.
#  2. The server's own overhead per request (request time less compute time,
#     from the server_time_us and compute_time_us each response carries),
#     p50 and p99 over sequential requests.
#  3. ResNet-50 at concurrency 8, dynamic batching on and off: throughput.
# Everything listens on 127.0.0.1 and stops by itself.
set -u
cd "$(dirname "$0")/.."
KILN=${KILN:-build/kiln}
DURATION=${DURATION:-10}
tmp=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

/usr/bin/python3 - "$tmp" <<'PY'
import os, sys, onnx, numpy as np
from onnx import helper, TensorProto
tmp = sys.argv[1]
def save(m, path):
    os.makedirs(os.path.dirname(path), exist_ok=True); m.ir_version = 8; onnx.save(m, path)
io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4]) for n in "ABC"]
g = helper.make_graph([helper.make_node("Add", ["A", "B"], ["C"])], "add", io[:2], io[2:])
save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), f"{tmp}/tiny/add/1/model.onnx")
# the inputs wrk posts, as files for kiln bench --url, so both send the same request
np.save(f"{tmp}/A.npy", np.array([[1, 2, 3, 4]], np.float32))
np.save(f"{tmp}/B.npy", np.array([[5, 6, 7, 8]], np.float32))
# ResNet-50 with a dynamic batch dimension, for batching on and off
src = "build/bench_models/resnet50/model.onnx"
if os.path.exists(src):
    m = onnx.load(src)
    for v in list(m.graph.input) + list(m.graph.output):
        v.type.tensor_type.shape.dim[0].dim_param = "N"
    for variant, batching in (("on", "dynamic_batching { max_queue_delay_microseconds: 2000 }"), ("off", "")):
        save(m, f"{tmp}/resnet_{variant}/resnet50/1/model.onnx")
        open(f"{tmp}/resnet_{variant}/resnet50/config.pbtxt", "w").write(
            f'name: "resnet50"\nmax_batch_size: 8\n{batching}\n')
PY

start_kiln() { # REPO PORT -> waits until ready
    "$KILN" serve --model-repository "$1" --http-port "$2" --metrics-port -1 --quiet --threads "${3:-1}" >/dev/null 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do curl -sf "127.0.0.1:$2/v2/health/ready" >/dev/null && return 0; sleep 0.1; done
    echo "kiln serve did not start"; exit 1
}

# wrk script posting a fixed body
cat >"$tmp/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"inputs":[{"name":"A","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]},{"name":"B","shape":[1,4],"datatype":"FP32","data":[5,6,7,8]}]}'
LUA
# wrk_run URL [SCRIPT] -> "rps p50_ms p99_ms"
wrk_run() {
    local out
    out=$(wrk -t2 -c"${CONNS:-64}" -d"${DURATION}s" --latency ${2:+-s "$2"} "$1" 2>&1)
    local rps p50 p99
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p50=$(echo "$out" | awk '$1=="50%" {print $2}')
    p99=$(echo "$out" | awk '$1=="99%" {print $2}')
    echo "$rps $p50 $p99"
}

kport=$(free_port); start_kiln "$tmp/tiny" "$kport"
nport=$(free_port)
mkdir -p "$tmp/nginx"
cat >"$tmp/nginx/nginx.conf" <<NGX
worker_processes 2;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $tmp/nginx;
    proxy_temp_path $tmp/nginx; fastcgi_temp_path $tmp/nginx; uwsgi_temp_path $tmp/nginx; scgi_temp_path $tmp/nginx;
    server { listen 127.0.0.1:$nport; location / { return 200 '{"outputs":[]}'; } }
}
NGX
nginx -c "$tmp/nginx/nginx.conf" -g 'daemon off;' &
pids+=($!)
sleep 0.5
# interleave: kiln, nginx, kiln, nginx
read -r k1 kp50a kp99a <<<"$(wrk_run "http://127.0.0.1:$kport/v2/models/add/infer" "$tmp/post.lua")"
read -r n1 np50a np99a <<<"$(wrk_run "http://127.0.0.1:$nport/" "$tmp/post.lua")"
read -r k2 kp50 kp99 <<<"$(wrk_run "http://127.0.0.1:$kport/v2/models/add/infer" "$tmp/post.lua")"
read -r n2 np50 np99 <<<"$(wrk_run "http://127.0.0.1:$nport/" "$tmp/post.lua")"
kiln_rps=$(echo "$k1 $k2" | awk '{printf "%.0f", ($1+$2)/2}')
nginx_rps=$(echo "$n1 $n2" | awk '{printf "%.0f", ($1+$2)/2}')
ratio=$(echo "$kiln_rps $nginx_rps" | awk '{printf "%.0f", 100*$1/$2}')

# kiln bench --url: the same server, model and request data, 64 connections,
# its own client (p50/p99 in ms)
read -r kb_rps kb_p50 kb_p99 kb_batch <<<"$("$KILN" bench --url "http://127.0.0.1:$kport" --model add --concurrency 64 \
    --input A="$tmp/A.npy" --input B="$tmp/B.npy" --duration "$DURATION" --warmup 1 --json 2>/dev/null |
    /usr/bin/python3 -c '
import json, sys
try:
    l = json.load(sys.stdin)["levels"][0]
    s = l["server"] or {}
    print("%.0f %.2fms %.2fms %.2f" % (l["throughput_per_s"], l["p50_ms"], l["p99_ms"], s.get("avg_batch_size", 0)))
except Exception:
    print("- - - -")')"

overhead=$(/usr/bin/python3 - "$kport" <<'PY'
import http.client, json, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
body = json.dumps({"inputs": [{"name": "A", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]},
                              {"name": "B", "shape": [1, 4], "datatype": "FP32", "data": [5, 6, 7, 8]}]})
over = []
for _ in range(2000):
    c.request("POST", "/v2/models/add/infer", body)
    p = json.loads(c.getresponse().read())["parameters"]
    over.append(p["server_time_us"] - p["compute_time_us"])
over.sort()
print(over[len(over) // 2], over[int(len(over) * 0.99)])
PY
)
read -r over_p50 over_p99 <<<"$overhead"

batch_rows=""
batch_ips=""
batch_line=""
RESNET_SECONDS=${RESNET_SECONDS:-20}
if [ -d "$tmp/resnet_on" ]; then
    # kiln bench --url (binary tensors), 8 connections, interleaved off/on/off/on;
    # the server's own stats give the average batch size of each window.
    for variant in off on off on; do
        p=$(free_port); start_kiln "$tmp/resnet_$variant" "$p" 2
        row=$("$KILN" bench --url "http://127.0.0.1:$p" --model resnet50 --binary --concurrency 8 \
                --duration "$RESNET_SECONDS" --warmup 3 --json 2>/dev/null |
              /usr/bin/python3 -c 'import json,sys; l=json.load(sys.stdin)["levels"][0]; print("%.2f %.0f %.0f %.2f %d" % (l["throughput_per_s"], l["p50_ms"], l["p99_ms"], l["server"]["avg_batch_size"], l["errors"]))')
        kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null; unset 'pids[-1]'
        read -r ips rp50 rp99 rbatch rerr <<<"$row"
        batch_rows+="| ResNet-50, 8 connections, batching $variant (avg batch $rbatch, $rerr errors) | $ips images/s | ${rp50} ms | ${rp99} ms |"$'\n'
        batch_ips+="$variant $ips"$'\n'
    done
    batch_pct=$(echo "$batch_ips" | awk '$1 == "on" {on += $2} $1 == "off" {off += $2} END {if (off > 0) printf "%.0f", 100 * on / off}')
    batch_line="ResNet-50 at 8 connections with dynamic batching serves **${batch_pct}%** of the images per second it serves without (sum of the two runs of each)."
fi

section=$(cat <<MD
## Serving (kiln serve)

Reproduce: \`make bench-serve\` (wrk, $DURATION s per run, 2 wrk threads, on this 2-core machine;
kiln and nginx interleaved in the same run).

| what | requests/s | p50 | p99 |
|---|---|---|---|
| kiln serve, one-Add model, 64 connections (run 1) | $k1 | $kp50a | $kp99a |
| nginx static 200, 64 connections (run 1) | $n1 | $np50a | $np99a |
| kiln serve, one-Add model, 64 connections (run 2) | $k2 | $kp50 | $kp99 |
| nginx static 200, 64 connections (run 2) | $n2 | $np50 | $np99 |
| kiln serve, one-Add model, 64 connections, measured by \`kiln bench --url\` | $kb_rps | $kb_p50 | $kb_p99 |
${batch_rows}
kiln's tiny-model infer rate is **${ratio}%** of nginx's static-response rate (mean of the two runs).
${batch_line}
\`kiln bench --url\` (kiln's perf_analyzer-style client, 64 keep-alive connections, 2 client threads)
measures the same server, model and request body right after wrk; the server reported an average
batch size of ${kb_batch} there.
Server overhead per request (server time less compute time, from each response's parameters,
2000 sequential requests): **p50 ${over_p50} us**, p99 ${over_p99} us.
MD
)
echo "$section"
/usr/bin/python3 tools/update_section.py docs/PERFORMANCE.md serve <<<"$section"
