#!/usr/bin/env bash
# test_example.sh - examples/simple_run.c (the public-API example) and the
# demo models of tools/make_demo_models.py.
#
# simple_run must describe and run demo_softmax.onnx and print the values
# numpy computes (demo_softmax_expected.npy); it must fail with status 2 and
# a message on a missing model.  `kiln run --output-dir` on the demo MLP must
# write demo_mlp_expected.npy's values (skipped while kiln lacks one of its ops).
# Last line: "N passed, N failed".
set -u
cd "$(dirname "$0")/../.."
dir=build/example_test
rm -rf "$dir"; mkdir -p "$dir"
passed=0; failed=0
pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1"; failed=$((failed + 1)); }
if ! /usr/bin/python3 tools/make_demo_models.py "$dir" || [ ! -x build/examples/simple_run ]; then
    echo "cannot make the demo models or build/examples/simple_run is missing"; echo "0 passed, 1 failed"; exit 1
fi

# same_values OUT EXPECTED.npy: the "values:" numbers of OUT match the array.
same_values() {
    /usr/bin/python3 - "$1" "$2" <<'PY'
import sys, numpy as np
text = open(sys.argv[1]).read()
# "values: 0.1 0.2 ... (20 values)": the numbers before "..."
vals = [float(v) for line in text.splitlines() if line.strip().startswith("values:")
        for v in line.split(":", 1)[1].split("...")[0].split()]
want = np.load(sys.argv[2]).ravel()[:len(vals)]
ok = len(vals) > 0 and np.allclose(vals, want, rtol=1e-4, atol=1e-6)
print("values", vals[:4], "expected", list(want[:4]))
sys.exit(0 if ok else 1)
PY
}

out=$dir/softmax.out
if ./build/examples/simple_run "$dir/demo_softmax.onnx" >"$out" 2>&1; then pass "simple_run runs"; else fail "simple_run runs: $(cat "$out")"; fi
grep -q '^input input: float32 \[2,4\]$' "$out" && pass "simple_run describes the input" || fail "simple_run describes the input: $(cat "$out")"
grep -q '^output output: float32 \[2,4\]$' "$out" && pass "simple_run describes the output" || fail "simple_run describes the output"
same_values "$out" "$dir/demo_softmax_expected.npy" && pass "simple_run output values" || fail "simple_run output values"
./build/examples/simple_run "$dir/missing.onnx" >"$dir/missing.out" 2>&1; rc=$?
if [ "$rc" -eq 2 ] && grep -q 'cannot open' "$dir/missing.out"; then pass "simple_run error text"; else fail "simple_run error text (exit $rc): $(cat "$dir/missing.out")"; fi

out=$dir/mlp.out
if ./build/kiln run "$dir/demo_mlp.onnx" --input input="$dir/demo_mlp_input.npy" --output-dir "$dir/mlp" >"$out" 2>&1; then
    if /usr/bin/python3 -c 'import sys, numpy as np; a, b = np.load(sys.argv[1]), np.load(sys.argv[2]); sys.exit(0 if a.shape == b.shape and np.allclose(a, b, rtol=1e-4, atol=1e-6) else 1)' \
        "$dir/mlp/output.npy" "$dir/demo_mlp_expected.npy"; then pass "demo MLP values"; else fail "demo MLP values: $(cat "$out")"; fi
elif grep -qE 'unknown op|has no kernel' "$out"; then
    echo "SKIP demo MLP: $(cat "$out")"
else
    fail "demo MLP: $(cat "$out")"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
