#!/usr/bin/env bash
# test_conv_paths.sh - conv.c's fast paths (weights packed once per session,
# the depthwise plane kernel, im2col straight into the GEMM's panels,
# FusedConv's residual sum and activation in the GEMM's block hook) against
# a NumPy convolution: cases from gen_conv_cases.py (odd sizes, strides,
# pads, auto_pad, groups, depthwise, dilations, 1-D and 3-D, batch 2) at
# levels 0 (plain Conv, weights packed per run) and 3 (FusedConv, packed
# once), on 1 and 2 threads.  Ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/../.."
out=build/cases/conv
rm -rf "$out"
if ! /usr/bin/python3 tests/integration/gen_conv_cases.py "$out"; then
    echo "0 passed, 1 failed (case generation)"
    exit 1
fi
passed=0
failed=0
for level in 0 3; do
    for threads in 1 2; do
        conf=$(./build/kiln conformance --level "$level" --threads "$threads" --rtol 1e-3 --atol 1e-4 "$out" 2>&1)
        echo "$conf" | grep '^FAIL' | sed "s/^/level $level threads $threads: /"
        passed=$((passed + $(echo "$conf" | grep -c '^PASS ')))
        failed=$((failed + $(echo "$conf" | grep -c '^FAIL ')))
    done
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
