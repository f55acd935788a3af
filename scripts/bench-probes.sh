#!/usr/bin/env bash
# Probe-overhead benchmark (issue 6; a measurement, not a test). Needs a running lab (sudo ./scripts/up.sh).
#
#   sudo ./scripts/bench-probes.sh [N] [SECONDS]      defaults: N=100, SECONDS=60
#
# Creates N busybox pods, each serving HTTP with `httpd` and carrying an exec liveness probe and an httpGet
# readiness probe, both every second. Once all are Ready it measures the agent's CPU over SECONDS as % of
# one core (utime + stime from /proc/<pid>/stat), prints it next to the target (<= 10 % of one core), and
# containerd's CPU over the same time for context (exec probes run through containerd and its shims).
set -euo pipefail

n=${1:-100}
secs=${2:-60}
state=${SKIFF_STATE:-/var/lib/skiff}
image=${SKIFF_BENCH_IMAGE:-busybox:1.35}
label=skiff-bench-probes
export KUBECONFIG=${KUBECONFIG:-$state/apiserver/admin.kubeconfig}

[[ $n =~ ^[0-9]+$ && $n -ge 1 ]] || { echo "bench-probes: N must be a positive number, got '$n'" >&2; exit 2; }
[[ $secs =~ ^[0-9]+$ && $secs -ge 1 ]] || { echo "bench-probes: SECONDS must be a positive number" >&2; exit 2; }
BENCH=bench-probes
# shellcheck source-path=SCRIPTDIR source=bench-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
agent_pid=$(bench_agent_pid)
containerd_pid=$(cat "$state/pids/containerd.pid" 2>/dev/null || true)
probed_pod() {
    printf '{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probes-%d", "labels": {"%s": "1"}},' "$1" "$label"
    printf ' "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "web", "image": "%s",' "$image"
    printf ' "imagePullPolicy": "IfNotPresent",'
    printf ' "command": ["sh", "-c", "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www"],'
    printf ' "ports": [{"name": "http", "containerPort": 8080}],'
    printf ' "livenessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1, "failureThreshold": 3},'
    printf ' "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},'
    printf ' "resources": {"requests": {"cpu": "1m", "memory": "4Mi"}}}]}}'
}
trap bench_cleanup EXIT

echo "== bench-probes: $n pods of $image, exec liveness + httpGet readiness every 1 s, agent pid $agent_pid"
t0=$(now_ms)
create_pods "$n" probed_pod
wait_all_ready "$n"
echo "all $n Ready after $(awk -v a="$t0" -v b="$(now_ms)" 'BEGIN { printf "%.1f", (b - a) / 1000 }') s"

echo "== measuring for ${secs} s"
a0=$(cpu_ticks "$agent_pid")
c0=""
[[ -n $containerd_pid ]] && c0=$(cpu_ticks "$containerd_pid")
w0=$(now_ms)
sleep "$secs"
a1=$(cpu_ticks "$agent_pid")
c1=""
[[ -n $containerd_pid ]] && c1=$(cpu_ticks "$containerd_pid")
w1=$(now_ms)
agent_cpu=$(percent "$((a1 - a0))" "$((w1 - w0))")
restarts=$(kubectl get pods -l "$label" --no-headers | awk '{ s += $4 } END { print s + 0 }')
not_ready=$(kubectl get pods -l "$label" --no-headers | awk '$2 !~ /^1\/1$/' | wc -l)
echo "agent CPU with $n probed pods: ${agent_cpu} % of one core   (target <= 10 %: $(verdict "$agent_cpu" 10))"
if [[ -n $c0 && -n $c1 ]]; then
    echo "containerd CPU over the same time: $(percent "$((c1 - c0))" "$((w1 - w0))") % of one core (shims not counted)"
fi
echo "restarts during the run: $restarts; pods not Ready at the end: $not_ready"
