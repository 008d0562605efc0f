#!/usr/bin/env bash
# test_writer.sh - the ONNX writer (src/onnx/write.c) round trip.
#
# Every model.onnx under Debian's ONNX test data (node, simple,
# pytorch-converted, pytorch-operator) is read by `kiln optimize --level 0`
# (a parse-only load: ops kiln has no kernel for are fine) and written back;
# each written file must pass onnx.checker.check_model and keep the original's
# nodes, inputs, outputs, opsets and initializer values
# (tests/integration/check_models.py).  Models kiln's reader refuses
# (unsupported features) and originals the checker itself rejects are
# skipped.  Last line: "N passed, N failed" (plus skips).
set -u
cd "$(dirname "$0")/../.."
data=/usr/share/libonnx-testdata/data
out=build/test_writer
rm -rf "$out"; mkdir -p "$out"
[ -x build/kiln ] || { echo "build/kiln is missing (run make)"; echo "0 passed, 1 failed"; exit 1; }
pairs=$out/pairs.tsv; : >"$pairs"
skipped=0; failed=0; i=0
while read -r m; do
    i=$((i + 1))
    dst=$out/m$i.onnx
    if ./build/kiln optimize "$m" -o "$dst" --level 0 >/dev/null 2>"$out/err"; then
        printf '%s\t%s\n' "$m" "$dst" >>"$pairs"
    elif grep -q 'not supported' "$out/err"; then
        skipped=$((skipped + 1)); echo "SKIP $m: $(head -c 200 "$out/err")"
    else
        failed=$((failed + 1)); echo "FAIL $m: kiln optimize: $(head -c 300 "$out/err")"
    fi
done < <(find "$data/node" "$data/simple" "$data/pytorch-converted" "$data/pytorch-operator" -name model.onnx | sort)
/usr/bin/python3 tests/integration/check_models.py <"$pairs" >"$out/check.out" 2>&1
grep -E '^(FAIL|SKIP)' "$out/check.out"
passed=$(grep -c '^PASS' "$out/check.out")
failed=$((failed + $(grep -c '^FAIL' "$out/check.out")))
skipped=$((skipped + $(grep -c '^SKIP' "$out/check.out")))
if ! grep -qE '^(PASS|FAIL|SKIP)' "$out/check.out" && [ -s "$pairs" ]; then
    echo "check_models.py did not run:"; tail -n 5 "$out/check.out"; failed=$((failed + 1))
fi
echo "$skipped skipped"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
