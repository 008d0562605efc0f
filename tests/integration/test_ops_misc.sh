#!/usr/bin/env bash
# test_ops_misc.sh - runs kiln on generated cases for the recurrent, image,
# signal and text kernels: the directions, layouts, activations, Resize axes,
# DFT/STFT options and text-op settings that Debian's conformance data leaves
# out.  Cases are generated into build/ (never committed) by
# gen_ops_misc_cases.py with NumPy references.  Ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/../.."
out=build/cases/ops_misc
rm -rf "$out"
if ! /usr/bin/python3 tests/integration/gen_ops_misc_cases.py "$out"; then
    echo "0 passed, 1 failed (case generation)"
    exit 1
fi
./build/kiln conformance "$out"
