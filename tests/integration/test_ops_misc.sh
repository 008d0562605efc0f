#!/usr/bin/env bash
# test_ops_misc.sh - runs kiln on generated cases for the recurrent, image,
# signal and text kernels: the directions, layouts, activations, Resize axes
# and antialias, DFT/STFT options and text-op settings that Debian's
# conformance data leaves out; then hostile cases that `kiln run` must refuse
# with exit status 2 and a message naming the problem (or run cleanly).
# Cases are generated into build/ (never committed) by
# gen_ops_misc_cases.py with NumPy references.  Ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/../.."
out=build/cases/ops_misc
bad=build/cases/ops_misc_bad
rm -rf "$out" "$bad"
if ! /usr/bin/python3 tests/integration/gen_ops_misc_cases.py "$out" "$bad"; then
    echo "0 passed, 1 failed (case generation)"
    exit 1
fi
conf=$(./build/kiln conformance "$out" 2>&1)
echo "$conf" | grep -v '^[0-9]* passed'
passed=$(echo "$conf" | grep -c '^PASS ')
failed=$(echo "$conf" | grep -c '^FAIL ')

for case in "$bad"/*/; do
    name=$(basename "$case")
    want=$(cat "$case/expect")
    args=()
    for f in "$case"/*.pb; do args+=(--input "$(basename "$f" .pb)=$f"); done
    err=$(./build/kiln run "$case/model.onnx" "${args[@]}" 2>&1 >/dev/null); rc=$?
    if [ -z "$want" ] && [ "$rc" -eq 0 ]; then
        echo "PASS bad/$name: runs cleanly"; passed=$((passed + 1))
    elif [ -n "$want" ] && [ "$rc" -eq 2 ] && grep -qF -- "$want" <<<"$err"; then
        echo "PASS bad/$name: $err"; passed=$((passed + 1))
    else
        echo "FAIL bad/$name: exit $rc, wanted '${want:-success}': $err"; failed=$((failed + 1))
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
