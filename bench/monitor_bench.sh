#!/usr/bin/env bash
# monitor_bench.sh - measures the monitoring plane and writes the numbers
# under a "## Monitoring" heading: into docs/PERFORMANCE.md when it exists
# (replacing that section), and always into docs/perf_monitor.md.
#
#   1. Sampler + history CPU cost: `kiln monitor` at --interval-ms 1000 with
#      8 fake GPUs (tests/fake_nvml, each with two compute processes),
#      writing its history to a file, no scrapes; CPU time of the process
#      (utime + stime from /proc) over MONITOR_BENCH_SECONDS (default 60)
#      as a share of one core.  Target: < 1 %.
#   2. History size per GPU per day: one GPU's 16 series written for a
#      whole day at 1 s, one transaction per second, as the sampler does
#      (build/bench/monitor_store_bench), file size including roll-ups.
#   3. Time to answer a 24 h query of one series at 1 s step (86,400
#      points): in process (store + JSON, median of 5) and over HTTP from a
#      `kiln monitor` opened on that day (curl time_total, median of 5).
#      Target: < 100 ms.
set -eu
cd "$(dirname "$0")/.."
seconds=${MONITOR_BENCH_SECONDS:-60}
make -s build/kiln build/tests/libfake_nvml.so build/bench/monitor_store_bench >/dev/null
tmp=$(mktemp -d)
kpid=""
cleanup() { [ -n "$kpid" ] && kill "$kpid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_up() { for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$1/metrics" && return 0; sleep 0.1; done; return 1; }
cpu_ticks() { awk '{ s = $0; sub(/^.*\) /, "", s); split(s, f, " "); print f[12] + f[13] }' "/proc/$1/stat"; }
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# ---- 1. CPU cost with 8 fake GPUs ------------------------------------------
{
    echo "gpus 8"
    echo "gpu all utilization 40 20 1"
    echo "gpu all temperature 50 0.1"
    echo "gpu all process 1001 2000000000"
    echo "gpu all process 1002 3000000000"
} >"$tmp/nvml.txt"
port=$(free_port)
KILN_FAKE_NVML_SCRIPT="$tmp/nvml.txt" KILN_NVML_LIBRARY=build/tests/libfake_nvml.so \
    build/kiln monitor --port "$port" --interval-ms 1000 --history "$tmp/cpu.db" --quiet >/dev/null 2>&1 &
kpid=$!
wait_up "$port"
sleep 3
hz=$(getconf CLK_TCK)
t0=$(cpu_ticks "$kpid")
s0=$(date +%s.%N)
sleep "$seconds"
t1=$(cpu_ticks "$kpid")
s1=$(date +%s.%N)
series=$(curl -s "http://127.0.0.1:$port/metrics" | grep -c -v '^#')
kill "$kpid"
wait "$kpid" 2>/dev/null || true
kpid=""
cpu_pct=$(awk -v a="$t0" -v b="$t1" -v hz="$hz" -v s0="$s0" -v s1="$s1" 'BEGIN { printf "%.3f", (b - a) / hz / (s1 - s0) * 100 }')
cpu_ms=$(awk -v a="$t0" -v b="$t1" -v hz="$hz" -v s0="$s0" -v s1="$s1" 'BEGIN { printf "%.2f", (b - a) / hz / (s1 - s0) * 1000 }')

# ---- 2. history size per GPU-day and the in-process query --------------------
build/bench/monitor_store_bench "$tmp/day.db" 1 >"$tmp/store.txt"
val() { awk -v k="$1" '$1 == k { print $2 }' "$tmp/store.txt"; }
bytes=$(val bytes_per_gpu_day)
mib=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')

# ---- 3. the same query over HTTP -----------------------------------------------
port=$(free_port)
build/kiln monitor --port "$port" --interval-ms 60000 --history "$tmp/day.db" --quiet \
    >/dev/null 2>&1 &
kpid=$!
wait_up "$port"
end=$(date +%s)
start=$((end - 86400))
query='kiln_gpu_temperature_celsius{gpu_uuid="GPU-bench-0000-0000-0000-000000000000"}'
points=$(curl -s -G "http://127.0.0.1:$port/api/v1/query_range" --data-urlencode "query=$query" \
    --data-urlencode "start=$start" --data-urlencode "end=$end" --data-urlencode "step=1" |
    python3 -c 'import json,sys; print(len(json.load(sys.stdin)["data"]["result"][0]["values"]))')
http_ms=$(for _ in 1 2 3 4 5; do
    curl -s -o /dev/null -w '%{time_total}\n' -G "http://127.0.0.1:$port/api/v1/query_range" \
        --data-urlencode "query=$query" --data-urlencode "start=$start" \
        --data-urlencode "end=$end" --data-urlencode "step=1"
done | median | awk '{ printf "%.1f", $1 * 1000 }')
kill "$kpid"
wait "$kpid" 2>/dev/null || true
kpid=""

cpu_model=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
section=$(cat <<MD
## Monitoring

Measured by \`bench/monitor_bench.sh\` on $(date -u +%Y-%m-%d), $(nproc) cores ($cpu_model), no GPU
(the fake NVML library stands in for the GPUs).

| measure | value | target |
|---|---|---|
| sampler + history CPU, 8 GPUs at 1 s, ${seconds} s run | ${cpu_pct} % of one core (${cpu_ms} ms of CPU per second; ${series} series exported) | < 1 % |
| history size, one GPU's 16 series at 1 s for a day (raw + minute roll-ups) | ${mib} MiB per GPU per day (${bytes} bytes) | |
| writing that day, one transaction per second | $(val write_seconds_per_day) s wall for 86,400 appends | |
| 24 h query of one series, step 1 s (${points} points), in process: store + JSON | $(val query_ms_median) ms median (min $(val query_ms_min), max $(val query_ms_max)) | < 100 ms |
| the same over HTTP from \`kiln monitor\` (curl time_total, median of 5) | ${http_ms} ms ($(val query_json_bytes) bytes of JSON) | < 100 ms |

The raw window keeps 24 h, so a GPU's history levels off at about one day of raw samples plus 30
days of minute roll-ups (1,440 rows per series per day). The fake NVML answers from memory; a real
driver's calls (ioctls) cost more per GPU and field, not measured here for want of a GPU. The
history values of the size test are noisy on purpose (random utilization, power, temperature);
steady series cost 3 bytes a point.
MD
)
printf '%s\n' "$section" >docs/perf_monitor.md
if [ -f docs/PERFORMANCE.md ]; then
    SECTION="$section" python3 - <<'PY'
import os, re
p = "docs/PERFORMANCE.md"
text = open(p).read()
new = "<!-- BEGIN monitor -->\n" + os.environ["SECTION"].rstrip("\n") + "\n<!-- END monitor -->\n"
pat = re.compile(r"<!-- BEGIN monitor -->\n.*?<!-- END monitor -->\n", re.S)
text = pat.sub(lambda m: new, text) if pat.search(text) else text.rstrip("\n") + "\n\n" + new
open(p, "w").write(text)
PY
fi
printf '%s\n' "$section"
