#!/usr/bin/env bash
# Density benchmark (a measurement, not a test). Needs a running lab (sudo ./scripts/up.sh).
#
#   sudo ./scripts/bench-density.sh [N] [IDLE_SECONDS]      defaults: N=100, IDLE_SECONDS=60
#
# 1. Creates N busybox `sleep` pods at once (tiny requests, so 110 fit on one node), waits until all are
#    Ready and reports the time to all Ready and the agent's RSS with N pods.
# 2. Leaves the node idle for IDLE_SECONDS and reports the agent's CPU over that time as % of one core
#    (utime + stime from /proc/<pid>/stat) and its RSS.
# 3. Deletes the pods and reports the agent's RSS with 0 pods.
# Issue 4's targets are printed next to each value (they are stated for N=100).
set -euo pipefail

n=${1:-100}
idle=${2:-60}
state=${SKIFF_STATE:-/var/lib/skiff}
image=${SKIFF_BENCH_IMAGE:-busybox:1.35}
label=skiff-bench-density
export KUBECONFIG=${KUBECONFIG:-$state/apiserver/admin.kubeconfig}

[[ $n =~ ^[0-9]+$ && $n -ge 1 ]] || { echo "bench-density: N must be a positive number, got '$n'" >&2; exit 2; }
[[ $idle =~ ^[0-9]+$ && $idle -ge 1 ]] || { echo "bench-density: IDLE_SECONDS must be a positive number" >&2; exit 2; }
BENCH=bench-density
# shellcheck source-path=SCRIPTDIR source=bench-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
agent_pid=$(bench_agent_pid)
rss_mib() { # VmRSS of the agent in MiB, one decimal
    awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$agent_pid/status"
}
density_pod() {
    printf '{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "density-%d", "labels": {"%s": "1"}},' "$1" "$label"
    printf ' "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "sleep", "image": "%s",' "$image"
    printf ' "imagePullPolicy": "IfNotPresent", "command": ["sleep", "1000000"],'
    printf ' "resources": {"requests": {"cpu": "1m", "memory": "4Mi"}}}]}}'
}
trap bench_cleanup EXIT

echo "== bench-density: $n pods of $image, agent pid $agent_pid"
rss0=$(rss_mib)
echo "agent RSS before: ${rss0} MiB"

t0=$(now_ms)
create_pods "$n" density_pod
wait_all_ready "$n"
t1=$(now_ms)
all_ready_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1000 }')
rss_n=$(rss_mib)
echo "time to all $n Ready: ${all_ready_s} s"
echo "agent RSS with $n pods: ${rss_n} MiB   (target <= 60 MiB at 100 pods: $(verdict "$rss_n" 60))"

echo "== idle for ${idle} s with $n pods"
c0=$(cpu_ticks "$agent_pid")
w0=$(now_ms)
sleep "$idle"
c1=$(cpu_ticks "$agent_pid")
w1=$(now_ms)
cpu=$(percent "$((c1 - c0))" "$((w1 - w0))")
rss_idle_n=$(rss_mib)
echo "agent CPU idle with $n pods: ${cpu} % of one core   (target <= 1 %: $(verdict "$cpu" 1))"
echo "agent RSS after the idle minute: ${rss_idle_n} MiB"

echo "== deleting the $n pods"
kubectl delete pods -l "$label" --grace-period=1 --timeout=600s >/dev/null
deadline=$(( $(date +%s) + 300 ))
while [[ $(kubectl get pods -l "$label" --no-headers 2>/dev/null | wc -l) -gt 0 ]]; do
    [[ $(date +%s) -gt $deadline ]] && { echo "bench-density: pods still present after 300 s" >&2; break; }
    sleep 1
done
sleep 10
rss_empty=$(rss_mib)
echo "agent RSS idle with 0 pods: ${rss_empty} MiB   (target <= 25 MiB: $(verdict "$rss_empty" 25))"

echo "== summary"
printf '%-36s %10s   %s\n' "measure" "value" "target"
printf '%-36s %10s   %s\n' "time to all $n Ready (s)" "$all_ready_s" "-"
printf '%-36s %10s   %s\n' "agent RSS, $n pods (MiB)" "$rss_n" "<= 60 at 100 pods"
printf '%-36s %10s   %s\n' "agent CPU idle, $n pods (% core)" "$cpu" "<= 1"
printf '%-36s %10s   %s\n' "agent RSS, 0 pods (MiB)" "$rss_empty" "<= 25"
