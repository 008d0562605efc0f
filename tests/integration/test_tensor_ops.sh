#!/usr/bin/env bash
# test_tensor_ops.sh - runs kiln on generated cases for the tensor family
# (Reshape, Transpose, Slice, Gather, Scatter, Pad, Tile, Expand, ...): the
# dtypes, strings, large and threaded copies, opset variants and reductions
# that Debian's conformance data leaves out, and inputs kiln must refuse
# with a clear message (indices out of range, absurd shapes).  Cases are
# generated into build/ (never committed) by gen_tensor_cases.py with NumPy
# references.  Ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/../.."
out=build/cases/tensor
rm -rf "$out"
if ! /usr/bin/python3 tests/integration/gen_tensor_cases.py "$out"; then
    echo "0 passed, 1 failed (case generation)"
    exit 1
fi
passed=0; failed=0

# Cases that must pass, on one thread and on four (the parallel copy paths).
for threads in 1 4; do
    log=$out/ok_$threads.log
    ./build/kiln conformance --threads "$threads" "$out/ok" >"$log" 2>&1
    p=$(grep -c '^PASS ' "$log"); f=$(grep -c '^FAIL ' "$log")
    grep '^FAIL ' "$log" | sed "s/^/  threads=$threads: /"
    passed=$((passed + p)); failed=$((failed + f))
done

# Cases that must fail cleanly: a FAIL line naming the problem, no crash.
log=$out/bad.log
./build/kiln conformance "$out/bad" >"$log" 2>&1
while IFS=$'\t' read -r name want; do
    line=$(grep -m1 "^FAIL bad/$name:" "$log")
    if [ -n "$line" ] && grep -qF -- "$want" <<<"$line" && ! grep -qiE 'signal|crash|timed out' <<<"$line"; then
        echo "PASS refuse $name"; passed=$((passed + 1))
    else
        echo "FAIL refuse $name: expected a message with '$want', got: ${line:-$(grep -m1 "$name" "$log")}"
        failed=$((failed + 1))
    fi
done <"$out/bad/expected.txt"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
