#!/usr/bin/env bash
# run_bench.sh - kiln against ONNX Runtime on the benchmark models (make bench)
# and writes the "engine" section of docs/PERFORMANCE.md.
#
# For each of ResNet-50, MobileNetV2 and BERT-base, at 1 and 2 threads, the two
# engines run in turn, A B A B ... (PAIRS pairs, each a fresh process that
# loads the model, warms up and times ITERS runs), so a drift in the machine's
# speed hits both alike.  The table quotes medians over the pairs: p50 latency,
# the ratio kiln/ORT (taken pair by pair), peak resident memory (ORT: node's
# peak less node's own baseline before ONNX Runtime loads) and load time
# (kiln: model load plus session creation; ORT: session creation).
# The raw JSON lines are kept in build/bench_results.jsonl.
#
# Environment: PAIRS (3), ITERS (20), WARMUP (3), MODELS ("resnet50
# mobilenetv2 bert"), THREADS ("1 2"), KILN (build/kiln), PEER_DIR
# (../shared/peer, the peer scripts), ORT_NODE_DIR (bench/peer/node_modules).
set -eu
cd "$(dirname "$0")/.."
KILN=${KILN:-build/kiln}
PAIRS=${PAIRS:-3}
ITERS=${ITERS:-20}
WARMUP=${WARMUP:-3}
MODELS=${MODELS:-"resnet50 mobilenetv2 bert"}
THREADS=${THREADS:-"1 2"}
MODEL_DIR=${MODEL_DIR:-build/bench_models}
PEER_DIR=${PEER_DIR:-../shared/peer}
export ORT_NODE_DIR=${ORT_NODE_DIR:-$PWD/bench/peer/node_modules}
case "$ORT_NODE_DIR" in /*) ;; *) ORT_NODE_DIR=$PWD/$ORT_NODE_DIR ;; esac
RESULTS=build/bench_results.jsonl

for need in "$KILN" "$PEER_DIR/ort_bench.js" "$ORT_NODE_DIR/onnxruntime-node"; do
    [ -e "$need" ] || { echo "run_bench.sh: $need is missing (make all; make bench-models)" >&2; exit 1; }
done
: >"$RESULTS"

# One JSON line tagged with engine, model and threads goes to $RESULTS.
record() {
    local engine=$1 model=$2 threads=$3 line=$4
    /usr/bin/python3 -c 'import json,sys; d=json.loads(sys.argv[4]); d.update(engine=sys.argv[1], bench_model=sys.argv[2], bench_threads=int(sys.argv[3])); print(json.dumps(d))' \
        "$engine" "$model" "$threads" "$line" >>"$RESULTS"
}

start=$(date +%s)
for model in $MODELS; do
    for threads in $THREADS; do
        for pair in $(seq 1 "$PAIRS"); do
            echo "  $model, $threads thread(s), pair $pair/$PAIRS" >&2
            k=$("$KILN" bench "$MODEL_DIR/$model" --threads "$threads" --warmup "$WARMUP" --iters "$ITERS" --json)
            record kiln "$model" "$threads" "$k"
            o=$(node "$PEER_DIR/ort_bench.js" "$MODEL_DIR/$model" --threads "$threads" --warmup "$WARMUP" --iters "$ITERS")
            record ort "$model" "$threads" "$o"
        done
    done
done
elapsed=$(( $(date +%s) - start ))

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
/usr/bin/python3 - "$RESULTS" "$PAIRS" "$ITERS" "$WARMUP" "$commit" "$cpu" "$(nproc)" "$elapsed" <<'PY' |
import json, statistics, sys
path, pairs, iters, warmup, commit, cpu, ncpu, elapsed = sys.argv[1:9]
rows = [json.loads(l) for l in open(path) if l.strip()]
med = statistics.median
keys = []
for r in rows:
    k = (r["bench_model"], r["bench_threads"])
    if k not in keys:
        keys.append(k)
print("## Engine: kiln against ONNX Runtime 1.30 (CPU)")
print()
print("Reproduce: `make bench` (bench/run_bench.sh).  Same machine, same inputs, same thread count;")
print(f"the two engines alternate, {pairs} pairs per row, each a fresh process with {warmup} warm-up")
print(f"and {iters} timed runs; medians over the pairs.  Ratio = kiln p50 / ORT p50, pair by pair")
print("(below 1: kiln is faster).  Peak RSS: kiln's whole process; ORT's node process less node's")
print("own baseline before ONNX Runtime loads.  Load: kiln model load + session creation; ORT")
print("session creation (both include the graph optimizer; kiln packs MatMul weights for the")
print("GEMM on first use, in the warm-up, ORT at session creation).  Arena: kiln's planned")
print("activation arena (sum of all intermediate tensors in brackets).")
print()
print(f"Machine: {ncpu} cores, {cpu}; kiln {commit}; {elapsed} s for the whole run.")
print()
print("| model | threads | kiln p50 ms | ORT p50 ms | ratio | kiln peak RSS MB | ORT peak RSS MB | kiln load ms | ORT create ms | kiln arena MB |")
print("|---|---|---|---|---|---|---|---|---|---|")
for model, threads in keys:
    k = [r for r in rows if r["engine"] == "kiln" and (r["bench_model"], r["bench_threads"]) == (model, threads)]
    o = [r for r in rows if r["engine"] == "ort" and (r["bench_model"], r["bench_threads"]) == (model, threads)]
    ratio = med([a["p50_ms"] / b["p50_ms"] for a, b in zip(k, o)])
    krss = med([r["peak_rss_bytes"] / 1048576 for r in k])
    orss = med([r["peak_rss_mb"] - r["baseline_rss_mb"] for r in o])
    arena = med([r.get("arena_bytes", 0) / 1048576 for r in k])
    total = med([r["activation_total_bytes"] / 1048576 for r in k])
    print(f"| {model} | {threads} | {med([r['p50_ms'] for r in k]):.1f} | {med([r['p50_ms'] for r in o]):.1f} | "
          f"{ratio:.2f} | {krss:.0f} | {orss:.0f} | {med([r['load_ms'] for r in k]):.0f} | "
          f"{med([r['session_create_ms'] for r in o]):.0f} | {arena:.1f} ({total:.0f}) |")
PY
/usr/bin/python3 tools/update_section.py docs/PERFORMANCE.md engine
echo "wrote the engine section of docs/PERFORMANCE.md ($elapsed s); raw results in $RESULTS" >&2

if [ -x bench/monitor_bench.sh ]; then
    bench/monitor_bench.sh
elif [ -f bench/monitor_bench.sh ]; then
    bash bench/monitor_bench.sh
fi
