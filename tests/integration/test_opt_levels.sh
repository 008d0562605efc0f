#!/usr/bin/env bash
# test_opt_levels.sh - the graph optimizer on the benchmark models, at every
# level.
#
# For each of build/bench_models/{mobilenetv2,resnet50,bert} (MobileNetV2 is
# generated when missing; ResNet-50 and BERT are big and used only when
# present):
#   - `kiln conformance --level L` passes for L = 0..3 (outputs within
#     rtol 1e-3 / atol 1e-4 of ONNX Runtime's, or of kiln's level 0 when the
#     model was generated here without ONNX Runtime);
#   - `kiln optimize --level L` (L = 1..3) writes a file that kiln loads and
#     runs, unoptimized, to the same outputs; at level 1 the file must pass
#     onnx.checker, hold standard ops only, and (when bench/peer has ONNX
#     Runtime installed) ONNX Runtime must run it to the same outputs.
# And `kiln bench --profile` on MobileNetV2 at levels 0 and 3: one profile
# entry per node of the graph that ran (fused ops at level 3, none at 0),
# node times that add up to no more than the runs they were part of.
# Last line: "N passed, N failed".
set -u
cd "$(dirname "$0")/../.."
models=build/bench_models
out=build/test_opt_levels
rm -rf "$out"; mkdir -p "$out"
[ -x build/kiln ] || { echo "build/kiln is missing (run make)"; echo "0 passed, 1 failed"; exit 1; }
passed=0; failed=0
pass() { passed=$((passed + 1)); echo "PASS $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; }
have_ort=false
[ -d bench/peer/node_modules/onnxruntime-node ] && command -v node >/dev/null 2>&1 && have_ort=true

# MobileNetV2 when missing: the model from bench/models, expected outputs from
# ONNX Runtime when it is installed, else from kiln without optimization.
if [ ! -f "$models/mobilenetv2/test_data_set_0/output_0.pb" ]; then
    echo "generating $models/mobilenetv2"
    mkdir -p "$models"
    /usr/bin/python3 bench/models/make_models.py "$models" mobilenetv2 >/dev/null || fail "make_models.py mobilenetv2"
    if $have_ort; then
        node bench/peer/make_expected.js "$models/mobilenetv2" >/dev/null || fail "make_expected.js mobilenetv2"
    else
        echo "(ONNX Runtime is not installed in bench/peer: expected outputs from kiln --level 0)"
        d=$models/mobilenetv2
        ./build/kiln run "$d/model.onnx" --input "input=$d/test_data_set_0/input_0.pb" --output-dir "$out/ref" \
            --level 0 >/dev/null || fail "kiln run mobilenetv2 --level 0"
        /usr/bin/python3 -c '
import sys, numpy as np
from onnx import numpy_helper
a = np.load(sys.argv[1])
open(sys.argv[2], "wb").write(numpy_helper.from_array(a, "output").SerializeToString())' \
            "$out/ref/output.npy" "$d/test_data_set_0/output_0.pb" || fail "expected output of mobilenetv2"
    fi
fi

for name in mobilenetv2 resnet50 bert; do
    d=$models/$name
    [ -f "$d/model.onnx" ] && [ -f "$d/test_data_set_0/output_0.pb" ] || { echo "SKIP $name: not in $models"; continue; }
    for level in 0 1 2 3; do
        if ./build/kiln conformance --level "$level" --rtol 1e-3 --atol 1e-4 "$d" >"$out/conf.out" 2>&1 &&
            grep -q "^PASS" "$out/conf.out"; then
            pass "$name at level $level"
        else
            fail "$name at level $level: $(grep -m1 FAIL "$out/conf.out")"
        fi
    done
    for level in 1 2 3; do
        o=$out/${name}_l$level
        mkdir -p "$o"
        ln -s "$(pwd)/$d/test_data_set_0" "$o/test_data_set_0"
        if ! ./build/kiln optimize "$d/model.onnx" -o "$o/model.onnx" --level "$level" >"$o/report.txt" 2>&1; then
            fail "kiln optimize $name --level $level: $(tail -n 1 "$o/report.txt")"; continue
        fi
        if ./build/kiln conformance --level 0 --rtol 1e-3 --atol 1e-4 "$o" >"$out/conf.out" 2>&1 &&
            grep -q "^PASS" "$out/conf.out"; then
            pass "$name optimized at level $level, written and run back"
        else
            fail "$name optimized at level $level, run back: $(grep -m1 FAIL "$out/conf.out")"
        fi
    done
    o=$out/${name}_l1
    if /usr/bin/python3 -c '
import sys, onnx
m = onnx.load(sys.argv[1])
onnx.checker.check_model(m)
bad = [n.op_type for n in m.graph.node if n.domain not in ("", "ai.onnx")]
sys.exit("non-standard ops: %s" % bad if bad else 0)' "$o/model.onnx" >"$out/check.out" 2>&1; then
        pass "$name level 1 file: onnx.checker, standard ops only"
    else
        fail "$name level 1 file: $(tail -n 1 "$out/check.out")"
    fi
    if $have_ort; then
        r=$out/${name}_ort
        mkdir -p "$r/test_data_set_0"
        cp "$o/model.onnx" "$r/model.onnx"
        cp "$d"/test_data_set_0/input_*.pb "$r/test_data_set_0/"
        if node bench/peer/make_expected.js "$r" >"$out/ort.out" 2>&1 &&
            /usr/bin/python3 -c '
import sys, numpy as np, onnx
from onnx import numpy_helper
t = lambda p: numpy_helper.to_array(onnx.load_tensor(p))
a, b = t(sys.argv[1]), t(sys.argv[2])
sys.exit(0 if a.shape == b.shape and np.allclose(a, b, rtol=1e-3, atol=1e-4) else "outputs differ")' \
                "$r/test_data_set_0/output_0.pb" "$d/test_data_set_0/output_0.pb" >>"$out/ort.out" 2>&1; then
            pass "$name level 1 file: ONNX Runtime runs it to the same output"
        else
            fail "$name level 1 file under ONNX Runtime: $(tail -n 1 "$out/ort.out")"
        fi
    else
        echo "SKIP $name level 1 file under ONNX Runtime: bench/peer has no onnxruntime-node (make bench-models installs it)"
    fi
done
# kiln bench --profile: per-node times of the graph that actually ran
d=$models/mobilenetv2
for level in 0 3; do
    if ./build/kiln bench "$d" --iters 5 --warmup 1 --level "$level" --profile --json >"$out/profile.json" 2>"$out/profile.err" &&
        /usr/bin/python3 - "$out/profile.json" "$level" >"$out/profile.out" 2>&1 <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); level = int(sys.argv[2]); p = r["profile"]
ops = {o["op"]: o for o in p["ops"]}
assert len(p["nodes"]) == sum(o["nodes"] for o in p["ops"]), "op rows do not cover every node"
assert all(n["ms_per_run"] >= 0 and n["shape"] for n in p["nodes"]), "a node without time or output shape"
fused = [o for o in ops if o.startswith("Fused")]
if level == 0:
    assert not fused and "Conv" in ops and "Clip" in ops, "level 0 ran fused ops: %s" % sorted(ops)
    assert len(p["nodes"]) > 100, "only %d nodes at level 0" % len(p["nodes"])
else:
    assert "FusedConv" in ops and "Clip" not in ops, "level 3 did not fuse Conv+Clip: %s" % sorted(ops)
total = sum(n["ms_per_run"] for n in p["nodes"])
assert abs(total - p["ms_per_run"]) < 1e-6 * max(1, total), "node times do not add up to the total"
# node times are measured inside the runs: their sum cannot exceed a run
assert 0 < total <= r["mean_ms"] * 1.001, "nodes %.3f ms vs runs %.3f ms" % (total, r["mean_ms"])
PY
    then
        pass "kiln bench --profile at level $level"
    else
        fail "kiln bench --profile at level $level: $(tail -n 1 "$out/profile.out" "$out/profile.err" | tr '\n' ' ')"
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
