#!/usr/bin/env bash
# check_nvml_vs_smi.sh - on a machine with an NVIDIA GPU, checks that kiln's
# real NVML path reports what nvidia-smi reports: per GPU (by UUID) memory
# used and total, temperature, power draw and limit, and utilization.
#
# Skips (exit 0, saying why) where there is no nvidia-smi or no GPU, which is
# the normal state of the CI machines; it is run by hand (or from the device
# tool) where a GPU is present:  tests/gpu/check_nvml_vs_smi.sh [build/kiln]
# Ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/../.."
KILN=${1:-build/kiln}
if ! command -v nvidia-smi >/dev/null 2>&1; then
    echo "SKIP: nvidia-smi is not installed (no NVIDIA driver on this machine)"; echo "0 passed, 0 failed"; exit 0
fi
if ! nvidia-smi -L >/dev/null 2>&1 || [ -z "$(nvidia-smi -L 2>/dev/null)" ]; then
    echo "SKIP: nvidia-smi finds no GPU"; echo "0 passed, 0 failed"; exit 0
fi
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$KILN" monitor --port "$port" --interval-ms 500 --quiet >/dev/null 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
for _ in $(seq 50); do curl -sf "127.0.0.1:$port/metrics" >/dev/null && break; sleep 0.1; done
sleep 1.5
metrics=$(curl -sf "127.0.0.1:$port/metrics")
smi=$(nvidia-smi --query-gpu=uuid,memory.used,memory.total,temperature.gpu,power.draw,power.limit,utilization.gpu \
      --format=csv,noheader,nounits)
/usr/bin/python3 - "$metrics" "$smi" <<'PY'
import re, sys
metrics, smi = sys.argv[1], sys.argv[2]
def value(name, uuid):
    m = re.search(r'^%s\{[^}]*gpu_uuid="%s"[^}]*\} (\S+)$' % (re.escape(name), re.escape(uuid)), metrics, re.M)
    return float(m.group(1)) if m else None
passed = failed = 0
def check(ok, what):
    global passed, failed
    passed += ok; failed += not ok
    print(("PASS " if ok else "FAIL ") + what)
def near(a, b, rel, abs_):
    return a is not None and b is not None and abs(a - b) <= max(abs_, rel * abs(b))
for line in smi.strip().splitlines():
    f = [x.strip() for x in line.split(",")]
    uuid = f[0]
    num = lambda s: float(s) if s not in ("[N/A]", "[Not Supported]", "N/A") else None
    used, total, temp, draw, limit, util = (num(x) for x in f[1:7])
    mib = 1024 * 1024
    check(near(value("nv_gpu_memory_total_bytes", uuid), total * mib, 0.01, mib), f"{uuid} memory total")
    check(near(value("nv_gpu_memory_used_bytes", uuid), used * mib, 0.05, 64 * mib), f"{uuid} memory used")
    check(near(value("kiln_gpu_temperature_celsius", uuid), temp, 0, 3), f"{uuid} temperature")
    if draw is not None:
        check(near(value("nv_gpu_power_usage", uuid), draw, 0.15, 10), f"{uuid} power draw (W)")
    if limit is not None:
        check(near(value("nv_gpu_power_limit", uuid), limit, 0.01, 1), f"{uuid} power limit (W)")
    u = value("nv_gpu_utilization", uuid)
    check(u is not None and 0 <= u <= 1 and near(u * 100, util, 0, 25), f"{uuid} utilization as 0..1")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
