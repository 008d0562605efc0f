#!/usr/bin/env bash
# run_fuzz.sh - builds every libFuzzer target tests/fuzz/fuzz_*.c and runs
# each for its share of SECONDS (first argument, default 600).
#
# The library (every src/ file except src/cli) is compiled with clang under
# -fsanitize=fuzzer-no-link,address,undefined into build/fuzz/obj; each
# target links it with -fsanitize=fuzzer.  Corpora live in
# build/fuzz/corpus/<target> and grow across runs.  Seeds: for fuzz_model,
# a few hundred small model.onnx files from Debian's ONNX test data; for any
# target, the files in tests/fuzz/seeds/<target>/ if that folder exists and
# the committed regressions in tests/fuzz/regressions/ (fuzz_model) and
# tests/fuzz/regressions_infer/ (fuzz_infer_request).
# Crashing, leaking or slow inputs land in build/fuzz/artifacts/<target>/.
#
# Exit status: 0 when no target found anything, 1 otherwise.  Ends with
# "N passed, N failed" (targets that ran clean / that found a problem).
set -u
cd "$(dirname "$0")/../.."
total=${1:-600}
case "$total" in ''|*[!0-9]*) echo "run_fuzz.sh: SECONDS must be a number, not '$total'" >&2; exit 2;; esac
build=${FUZZ_BUILD:-build/fuzz}   # FUZZ_BUILD: another folder, e.g. for a second run beside the first
jobs=$(nproc 2>/dev/null || echo 2)
CLANG=${CLANG:-clang}
# The library is gcc's business (-Werror there); clang's own warnings and
# gcc-only pragmas in it must not stop the fuzzers, so -Werror is for the
# fuzz targets alone.
FLAGS="-std=c11 -D_GNU_SOURCE -Iinclude -Isrc -g -O1 -fno-omit-frame-pointer -pthread
       -fsanitize=address,undefined -fno-sanitize-recover=undefined
       -Wall -Wextra -Wno-unused-parameter -Wno-unknown-warning-option -Wno-format-truncation -Wno-unknown-pragmas"
LIBS="-ljansson -levent -levent_pthreads -lsqlite3 -lyaml -lncursesw -lm -ldl -lpthread"
mkdir -p "$build/obj"

# Compile the library objects that are out of date (make does the bookkeeping).
srcs=$(find src -name '*.c' -not -path 'src/cli/*' | sort)
mk=$build/objects.mk
{
    echo "all:"
    for s in $srcs; do
        o=$build/obj/${s%.c}.o
        isa=""
        case "$s" in *_avx512*) isa="-mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma -mavx2";; *_avx2*) isa="-mavx2 -mfma -mf16c";; esac
        echo "all: $o"
        echo "$o: $s"
        echo "	@mkdir -p \$(dir \$@) && $CLANG $(echo $FLAGS) -fsanitize=fuzzer-no-link $isa -MMD -MP -c \$< -o \$@"
        echo "-include ${o%.o}.d"
    done
} >"$mk"
if ! make -s -j"$jobs" -f "$mk" all; then
    echo "run_fuzz.sh: building the library with clang failed"; echo "0 passed, 1 failed"; exit 1
fi
objs=$(for s in $srcs; do echo "$build/obj/${s%.c}.o"; done)

targets=$(ls tests/fuzz/fuzz_*.c 2>/dev/null)
n=$(echo "$targets" | grep -c .)
if [ "$n" -eq 0 ]; then echo "no fuzz targets"; echo "0 passed, 0 failed"; exit 0; fi
share=$(( total / n )); [ "$share" -lt 1 ] && share=1

# seed_fuzz_model DIR: small conformance models (by size, a few hundred).
seed_fuzz_model() {
    local dir=$1 data=/usr/share/libonnx-testdata/data
    [ -d "$data" ] || return 0
    find "$data" -name model.onnx -size -6k 2>/dev/null | sort | head -n 400 | while read -r f; do
        cp "$f" "$dir/seed_$(echo "$f" | md5sum | cut -c1-16).onnx"
    done
    cp tests/fuzz/regressions/*.onnx "$dir/" 2>/dev/null || true
}

passed=0; failed=0
for src in $targets; do
    name=$(basename "$src" .c)
    bin=$build/$name
    echo "== $name: building"
    if ! $CLANG $(echo $FLAGS) -Werror -fsanitize=fuzzer -o "$bin" "$src" $objs $LIBS; then
        echo "FAIL $name: does not build"; failed=$((failed + 1)); continue
    fi
    corpus=$build/corpus/$name; artifacts=$build/artifacts/$name
    mkdir -p "$corpus" "$artifacts"
    if [ -z "$(ls -A "$corpus")" ]; then
        case "$name" in
            fuzz_model|fuzz_roundtrip) seed_fuzz_model "$corpus";;
            fuzz_infer_request) cp tests/fuzz/regressions_infer/* "$corpus/" 2>/dev/null;;
        esac
        [ -d "tests/fuzz/seeds/$name" ] && cp -r "tests/fuzz/seeds/$name/." "$corpus/"
    fi
    echo "== $name: fuzzing for ${share}s (corpus $(ls "$corpus" | wc -l) files)"
    ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        "$bin" -max_total_time="$share" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
        -max_len=65536 -print_final_stats=1 -artifact_prefix="$artifacts/" "$corpus" \
        >"$build/$name.log" 2>&1
    rc=$?
    grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss)' "$build/$name.log" | sed 's/^/  /'
    if [ "$rc" -eq 0 ]; then
        echo "PASS $name"; passed=$((passed + 1))
    else
        echo "FAIL $name: exit $rc, see $build/$name.log; inputs in $artifacts/"
        grep -m 3 -E 'ERROR: |SUMMARY: |runtime error' "$build/$name.log" | sed 's/^/  /'
        failed=$((failed + 1))
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
