#!/usr/bin/env bash
# test_bad_input.sh - `kiln run` on broken models and wrong inputs.
#
# Each case must end with exit status 2 and exactly one line on stderr that
# names the problem (checked by a fixed substring).  The models are made at
# test time by tests/integration/make_bad_models.py into build/bad_input/.
# Last line: "N passed, N failed".
set -u
cd "$(dirname "$0")/../.."
dir=build/bad_input/models
rm -rf build/bad_input; mkdir -p "$dir"
passed=0; failed=0
if ! /usr/bin/python3 tests/integration/make_bad_models.py "$dir"; then
    echo "cannot generate the bad models"; echo "0 passed, 1 failed"; exit 1
fi

# expect NAME SUBSTRING ARGS...: kiln run ARGS exits 2 with one stderr line
# holding SUBSTRING (usage errors may add the usage text: USAGE=1).
expect() {
    local name=$1 want=$2; shift 2
    local err=build/bad_input/$name.err rc lines
    ./build/kiln run "$@" >/dev/null 2>"$err"; rc=$?
    lines=$(wc -l <"$err")
    if [ "$rc" -ne 2 ]; then
        echo "FAIL $name: exit $rc, expected 2: $(head -c 300 "$err")"; failed=$((failed + 1))
    elif [ "$lines" -ne 1 ] && [ -z "${USAGE:-}" ]; then
        echo "FAIL $name: $lines lines on stderr, expected 1:"; sed 's/^/    /' "$err"; failed=$((failed + 1))
    elif ! grep -qF -- "$want" "$err"; then
        echo "FAIL $name: message lacks '$want': $(cat "$err")"; failed=$((failed + 1))
    else
        echo "PASS $name: $(cat "$err")"; passed=$((passed + 1))
    fi
}

good="$dir/good.onnx --input A=$dir/a.npy --input B=$dir/b.npy"
# The baseline: the same model and inputs, unbroken, run cleanly.
if ./build/kiln run $good >build/bad_input/good.out 2>&1; then
    echo "PASS good_baseline"; passed=$((passed + 1))
else
    echo "FAIL good_baseline: $(head -c 300 build/bad_input/good.out)"; failed=$((failed + 1))
fi
expect missing_file "cannot open" "$dir/no_such_model.onnx"
expect empty_file "the file is empty" "$dir/empty.onnx"
expect truncated "truncated or corrupted" "$dir/truncated.onnx" --input A=$dir/a.npy --input B=$dir/b.npy
expect corrupted "truncated or corrupted" "$dir/corrupted.onnx" --input A=$dir/a.npy --input B=$dir/b.npy
expect unknown_op "unknown op FrobnicateXYZ in domain 'com.example' (opset 7)" "$dir/unknown_op.onnx"
expect missing_input "input 'B' is missing" "$dir/good.onnx" --input A=$dir/a.npy
expect unknown_input "no input named 'Z'" $good --input Z=$dir/a.npy
expect wrong_dtype "input 'A' must be float32, got int64" "$dir/good.onnx" --input A=$dir/a_int64.npy --input B=$dir/b.npy
expect wrong_shape "input 'A' must have shape [2,3]" "$dir/good.onnx" --input A=$dir/a_3x2.npy --input B=$dir/b.npy
expect missing_input_file "cannot open" "$dir/good.onnx" --input A=$dir/nothing.npy --input B=$dir/b.npy
expect raw_mismatch "needs 16 raw bytes, the file has 12" "$dir/raw_mismatch.onnx"
expect dims_overflow "overflows" "$dir/dims_overflow.onnx"
expect external_escape "outside the model's directory" "$dir/escape.onnx"
expect external_escape_link "leads outside the model's directory" "$dir/escape_link.onnx"
expect truncated_npy "a_truncated.npy" "$dir/good.onnx" --input A=$dir/a_truncated.npy --input B=$dir/b.npy
expect bad_pb_input "needs 24 raw bytes, the file has 20" "$dir/good.onnx" --input A=$dir/a_bad.pb --input B=$dir/b.npy
expect cycle "has a cycle" "$dir/cycle.onnx"
expect dangling "input 'nowhere' is not produced" "$dir/dangling.onnx"
expect no_import "does not import domain 'com.example'" "$dir/no_import.onnx"
USAGE=1 expect bad_usage "unknown option" "$dir/good.onnx" --frobnicate
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
