#!/usr/bin/env bash
# check_conformance.sh - runs `kiln conformance` over Debian's ONNX test data
# and compares the failures with tests/conformance/known_failures.txt.
#
# A test that fails and is not listed is a regression; a listed test that now
# passes is reported too (remove it from the list to lock in the gain).  Both
# count as failures here so the list stays exact.  Ends with
# "conformance: N passed, N failed".
set -u
cd "$(dirname "$0")/../.."
data=/usr/share/libonnx-testdata/data
known=tests/conformance/known_failures.txt
out=$(mktemp); trap 'rm -f "$out"' EXIT
start=$(date +%s)
./build/kiln conformance "$data/node" "$data/pytorch-converted" "$data/pytorch-operator" "$data/simple" >"$out" 2>&1
secs=$(( $(date +%s) - start ))
tail -n 1 "$out"
for part in node pytorch-converted pytorch-operator simple; do
    p=$(grep -c "^PASS $part/" "$out"); t=$(grep -cE "^(PASS|FAIL|SKIP) $part/" "$out")
    echo "  $part: $p of $t passed"
done
echo "  took ${secs}s"
regressions=0; gains=0
while read -r name; do
    [ -z "$name" ] && continue
    if ! grep -qxF "$name" <(grep -v '^#' "$known" | sed 's/[[:space:]]*#.*//' | sed '/^$/d'); then
        echo "REGRESSION: $(grep -m1 "^FAIL $name:" "$out")"; regressions=$((regressions + 1))
    fi
done < <(grep '^FAIL ' "$out" | sed -E 's/^FAIL ([^:]+):.*/\1/')
while read -r name; do
    [ -z "$name" ] && continue
    if grep -qxF "PASS $name" "$out"; then
        echo "NOW PASSES (remove from $known): $name"; gains=$((gains + 1))
    fi
done < <(grep -v '^#' "$known" | sed 's/[[:space:]]*#.*//' | sed '/^$/d')
passed=$(grep -c '^PASS ' "$out")
echo "conformance: $passed passed, $((regressions + gains)) failed"
[ $((regressions + gains)) -eq 0 ]
