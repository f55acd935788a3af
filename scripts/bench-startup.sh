#!/usr/bin/env bash
# Pod start-up benchmark (a measurement, not a test). Needs a running lab (sudo ./scripts/up.sh).
#
#   sudo ./scripts/bench-startup.sh [N] [IMAGE]      defaults: N=30, IMAGE=nginx
#
# 1. skiff: creates N pods at once through the API server (image already pulled, imagePullPolicy IfNotPresent)
#    and reports p50/p90/p99 of create -> Ready as seen through a watch, and the agent's RSS afterwards.
# 2. floor: containerd alone starting the same N containers at once (ctr run -d, which creates the snapshot,
#    the container and the task and starts it), p50/p90/p99 of each start.
# 3. runtime floor: the same N containers through containerd's API from one process (examples/bench_floor:
#    the agent's runtime calls, no ctr process per container, no API server, CNI or pinned namespaces),
#    four at a time first come first served as the agent's start-up gate admits pods: what containerd,
#    the shims and runc need on their own. The distance from it to (1) is what skiff itself adds.
# Prints all three and the ratios of the p50s.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
n=${1:-30}
image=${2:-nginx}
state=${SKIFF_STATE:-/var/lib/skiff}
sock=/run/skiff/containerd/containerd.sock
export KUBECONFIG=${KUBECONFIG:-$state/apiserver/admin.kubeconfig}

[[ -f $state/pids/agent.pid ]] || { echo "bench-startup: the lab is not up (run sudo ./scripts/up.sh)" >&2; exit 1; }
agent_pid=$(cat "$state/pids/agent.pid")

# SKIFF_SKIP_BUILD=1 uses the example binary as it is (as up.sh does for the lab's binaries).
[[ ${SKIFF_SKIP_BUILD:-0} == 1 ]] ||
    cargo build --release --quiet -p skiff-agent --example bench_startup --example bench_floor
bench="$repo/target/release/examples/bench_startup"
bench_floor="$repo/target/release/examples/bench_floor"

percentiles() { # reads numbers (ms) on stdin, prints "p50 p90 p99"
    sort -n | awk '{ v[NR] = $1 } END {
        n = NR; if (n == 0) { print "nan nan nan"; exit }
        split("50 90 99", ps, " ");
        for (i = 1; i <= 3; i++) { r = int((ps[i] / 100) * n); if (r < (ps[i] / 100) * n) r++; if (r < 1) r = 1; printf "%.1f ", v[r] }
        print "" }'
}

# Warm-up: make sure the image is pulled, so neither side measures a pull.
"$bench" 1 "$image" >/dev/null
sleep 2

echo "== skiff: $n pods at once, create -> Ready (watch)"
out=$("$bench" "$n" "$image" "$agent_pid")
read -r s50 s90 s99 < <(grep '^latency_ms' <<<"$out" | awk '{print $2}' | percentiles)
rss_kib=$(awk '/^agent_rss_kib/ {print $2}' <<<"$out")
echo "skiff   p50 ${s50} ms   p90 ${s90} ms   p99 ${s99} ms   ($(grep '^ready' <<<"$out"))"
echo "agent RSS with $n pods: $((rss_kib / 1024)) MiB"

# Wait for the bench pods to be gone before measuring the floor.
for _ in $(seq 1 120); do
    left=$(kubectl get pods -l skiff-bench --no-headers 2>/dev/null | wc -l)
    [[ $left -eq 0 ]] && break
    sleep 1
done

echo "== floor: containerd alone, $n containers at once (ctr run -d)"
ref=$(ctr --address "$sock" -n skiff images ls -q | grep -m1 "library/${image%%:*}:" || true)
[[ -n $ref ]] || { echo "bench-startup: image $image not in containerd namespace skiff" >&2; exit 1; }
tmp=$(mktemp -d)
for i in $(seq 1 "$n"); do
    (
        t0=$(date +%s%N)
        ctr --address "$sock" -n skiff run -d "$ref" "floor-$$-$i" >/dev/null 2>"$tmp/err-$i"
        t1=$(date +%s%N)
        echo $(( (t1 - t0) / 1000 )) >"$tmp/t-$i"
    ) &
done
wait
read -r f50 f90 f99 < <(cat "$tmp"/t-* | awk '{ printf "%.1f\n", $1 / 1000 }' | percentiles)
echo "floor   p50 ${f50} ms   p90 ${f90} ms   p99 ${f99} ms"
for i in $(seq 1 "$n"); do
    ctr --address "$sock" -n skiff tasks kill -s SIGKILL "floor-$$-$i" >/dev/null 2>&1 || true
done
sleep 1
for i in $(seq 1 "$n"); do
    ctr --address "$sock" -n skiff tasks rm -f "floor-$$-$i" >/dev/null 2>&1 || true
    ctr --address "$sock" -n skiff containers rm "floor-$$-$i" >/dev/null 2>&1 || true
done
rm -rf "$tmp"

sleep 5
echo "== runtime floor: containerd's API from one process, $n containers, 4 at a time"
out=$("$bench_floor" "$n" "$image" 4 "$sock" "$state/agent/registries.yaml")
read -r r50 r90 r99 < <(grep '^latency_ms' <<<"$out" | awk '{print $2}' | percentiles)
echo "runtime p50 ${r50} ms   p90 ${r90} ms   p99 ${r99} ms   ($(grep '^started' <<<"$out"))"

awk -v s="$s50" -v f="$f50" 'BEGIN { if (f > 0) printf "ratio skiff/floor (p50): %.2f\n", s / f }'
awk -v s="$s50" -v r="$r50" 'BEGIN { if (r > 0) printf "ratio skiff/runtime floor (p50): %.2f\n", s / r }'
