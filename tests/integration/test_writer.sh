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
# skipped.  `kiln conformance` must give every rewritten model (run on the
# original test data) the verdict it gives the original; --level 3 files must
# pass the checker as well.  Then `kiln optimize` itself: --json, the rewritten demo MLP gives
# byte-identical output, a bad --level exits 2.
# Last line: "N passed, N failed" (plus skips).
set -u
cd "$(dirname "$0")/../.."
root=$(pwd)
data=/usr/share/libonnx-testdata/data
out=build/test_writer
rm -rf "$out"; mkdir -p "$out"
[ -x build/kiln ] || { echo "build/kiln is missing (run make)"; echo "0 passed, 1 failed"; exit 1; }
pairs=$out/pairs.tsv; : >"$pairs"
skipped=0; failed=0; i=0
while read -r m; do
    i=$((i + 1))
    # written into a mirror of the test tree, beside links to its test data
    rel=${m#"$data"/}; dst=$out/mirror/$rel
    mkdir -p "$(dirname "$dst")"
    for set in "$(dirname "$m")"/test_data_set_*; do [ -e "$set" ] && ln -s "$set" "$(dirname "$dst")/"; done
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

# Optimized (--level 3) files must pass the checker too: folded weights and
# fused ops included.  Models kiln cannot load at level 3 are left out.
: >"$out/pairs3.tsv"; i=0
while read -r m; do
    i=$((i + 1))
    ./build/kiln optimize "$m" -o "$out/o$i.onnx" --level 3 >/dev/null 2>&1 && printf '%s\t%s\n' "$m" "$out/o$i.onnx" >>"$out/pairs3.tsv"
done < <(find "$data/node" "$data/simple" "$data/pytorch-converted" "$data/pytorch-operator" -name model.onnx | sort)
/usr/bin/python3 tests/integration/check_models.py --checker-only <"$out/pairs3.tsv" >"$out/check3.out" 2>&1
n3=$(grep -c '^PASS' "$out/check3.out"); f3=$(grep -c '^FAIL' "$out/check3.out")
if [ "$f3" -eq 0 ] && [ "$n3" -gt 0 ]; then
    passed=$((passed + 1)); echo "PASS level-3 files pass the checker ($n3 models)"
else
    failed=$((failed + 1)); echo "FAIL level-3 files: $f3 of $((n3 + f3)) fail the checker"; grep '^FAIL' "$out/check3.out" | head -n 5
fi

# kiln itself must judge the rewritten models exactly as the originals.
(cd "$data" && "$root/build/kiln" conformance node simple pytorch-converted pytorch-operator) >"$out/conf_orig.txt" 2>&1
(cd "$out/mirror" && "$root/build/kiln" conformance node simple pytorch-converted pytorch-operator) >"$out/conf_written.txt" 2>&1
verdicts() { grep -oE '^(PASS|FAIL|SKIP) [^:]*' "$1" | sort; }
if [ -s "$out/conf_orig.txt" ] && diff <(verdicts "$out/conf_orig.txt") <(verdicts "$out/conf_written.txt") >"$out/conf.diff"; then
    passed=$((passed + 1)); echo "PASS kiln conformance on the rewritten models: $(tail -n 1 "$out/conf_written.txt")"
else
    failed=$((failed + 1)); echo "FAIL kiln conformance differs on the rewritten models:"; head -n 10 "$out/conf.diff"
fi

# The rewritten demo MLP (default level) runs and gives the same output; --json is JSON;
# bad usage exits 2.
/usr/bin/python3 tools/make_demo_models.py "$out/demo" >/dev/null
if ./build/kiln optimize "$out/demo/demo_mlp.onnx" -o "$out/demo/mlp_kiln.onnx" --json >"$out/demo/report.json" 2>&1 &&
   /usr/bin/python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); sys.exit(0 if r["nodes_before"] == 6 and 0 < r["nodes_after"] <= 6 else 1)' "$out/demo/report.json"; then
    passed=$((passed + 1)); echo "PASS optimize --json"
else
    failed=$((failed + 1)); echo "FAIL optimize --json: $(head -c 300 "$out/demo/report.json")"
fi
for m in demo_mlp mlp_kiln; do
    ./build/kiln run "$out/demo/$m.onnx" --input input="$out/demo/demo_mlp_input.npy" --output-dir "$out/demo/$m" >/dev/null 2>&1
done
if [ -f "$out/demo/demo_mlp/output.npy" ] && cmp -s "$out/demo/demo_mlp/output.npy" "$out/demo/mlp_kiln/output.npy"; then
    passed=$((passed + 1)); echo "PASS rewritten demo MLP gives the same output"
elif [ ! -f "$out/demo/demo_mlp/output.npy" ]; then
    skipped=$((skipped + 1)); echo "SKIP rewritten demo MLP: kiln cannot run the demo MLP"
else
    failed=$((failed + 1)); echo "FAIL rewritten demo MLP output differs"
fi
./build/kiln optimize "$out/demo/demo_mlp.onnx" --level 7 -o "$out/x.onnx" >/dev/null 2>&1; rc=$?
if [ "$rc" -eq 2 ]; then passed=$((passed + 1)); echo "PASS optimize bad level exits 2"
else failed=$((failed + 1)); echo "FAIL optimize bad level exits $rc"; fi
echo "$skipped skipped"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
