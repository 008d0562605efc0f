#!/usr/bin/env bash
# test_attention.sh - the attention fusion (src/opt/pass_attention.c) and
# the com.kiln Attention kernel (src/ops/attention.c) against NumPy: cases
# from gen_attention_cases.py (BERT's exported form, long sequences, other
# layouts, broadcast K/V heads, a case that must not fuse) at levels 0
# (unfused ops) and 2/3 (fused), on 1 and 2 threads; and at level 3 each
# case runs the number of Attention nodes its name ends with, and no
# Softmax where it fused.  Ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/../.."
out=build/cases/attention
rm -rf "$out"
if ! /usr/bin/python3 tests/integration/gen_attention_cases.py "$out"; then
    echo "0 passed, 1 failed (case generation)"
    exit 1
fi
passed=0
failed=0
for level in 0 2 3; do
    for threads in 1 2; do
        conf=$(./build/kiln conformance --level "$level" --threads "$threads" --rtol 1e-4 --atol 1e-5 "$out" 2>&1)
        echo "$conf" | grep '^FAIL' | sed "s/^/level $level threads $threads: /"
        passed=$((passed + $(echo "$conf" | grep -c '^PASS ')))
        failed=$((failed + $(echo "$conf" | grep -c '^FAIL ')))
    done
done
for d in "$out"/*/; do
    name=$(basename "$d")
    want=${name##*_fuse}
    if ./build/kiln bench "$d" --iters 1 --warmup 0 --level 3 --profile --json >"$out/$name.json" 2>&1 &&
        /usr/bin/python3 - "$out/$name.json" "$want" <<'PY'
import json, sys
ops = {o["op"]: o["nodes"] for o in json.load(open(sys.argv[1]))["profile"]["ops"]}
want = int(sys.argv[2])
got = ops.get("Attention", 0)
assert got == want, "Attention nodes: %d, expected %d (ops %s)" % (got, want, ops)
assert want == 0 or "Softmax" not in ops, "a Softmax is left: %s" % ops
PY
    then
        passed=$((passed + 1))
    else
        echo "FAIL $name: fusion count ($(tail -n 1 "$out/$name.json"))"
        failed=$((failed + 1))
    fi
done
# the fused graph written by kiln optimize loads and runs to the same outputs
o=$out/optimized/bert_fuse1
mkdir -p "$o"
cp -r "$out/bert_fuse1/test_data_set_0" "$o/"
if ./build/kiln optimize "$out/bert_fuse1/model.onnx" -o "$o/model.onnx" --level 3 >"$out/optimize.out" 2>&1 &&
    grep -q "attention_fusion" "$out/optimize.out" &&
    ./build/kiln conformance --level 0 --rtol 1e-4 --atol 1e-5 "$o" >"$out/conf_opt.out" 2>&1; then
    passed=$((passed + 1))
else
    echo "FAIL kiln optimize bert_fuse1: $(tail -n 2 "$out/optimize.out" "$out/conf_opt.out" | tr '\n' ' ')"
    failed=$((failed + 1))
fi
# a hand-written Attention node whose K does not fit Q: a clear error, exit 2
bad=$out/bad
mkdir -p "$bad"
/usr/bin/python3 - "$bad" <<'PY'
import sys, numpy as np, onnx
from onnx import TensorProto, helper
d = sys.argv[1]
io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("Q", "K", "V", "Y")]
node = helper.make_node("Attention", ["Q", "K", "V"], ["Y"], domain="com.kiln", k_layout=1)
m = helper.make_model(helper.make_graph([node], "bad", io[:3], io[3:]),
                      opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.kiln", 1)])
m.ir_version = 8
onnx.save(m, d + "/model.onnx")
np.save(d + "/q.npy", np.zeros((1, 2, 3, 4), np.float32))
np.save(d + "/k.npy", np.zeros((1, 2, 3, 5), np.float32))  # head size 5, Q has 4
np.save(d + "/v.npy", np.zeros((1, 2, 3, 4), np.float32))
PY
./build/kiln run "$bad/model.onnx" --input Q="$bad/q.npy" --input K="$bad/k.npy" --input V="$bad/v.npy" \
    >/dev/null 2>"$bad/err"
rc=$?
if [ "$rc" -eq 2 ] && grep -q "Attention.*shapes do not fit: Q \[1, 2, 3, 4\], K \[1, 2, 3, 5\]" "$bad/err"; then
    passed=$((passed + 1))
else
    echo "FAIL bad Attention shapes: exit $rc, $(cat "$bad/err")"
    failed=$((failed + 1))
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
