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
[[ -f $state/pids/agent.pid ]] || { echo "bench-probes: the lab is not up (run sudo ./scripts/up.sh)" >&2; exit 1; }
agent_pid=$(cat "$state/pids/agent.pid")
[[ -r /proc/$agent_pid/stat ]] || { echo "bench-probes: agent pid $agent_pid is not running" >&2; exit 1; }
containerd_pid=$(cat "$state/pids/containerd.pid" 2>/dev/null || true)
hz=$(getconf CLK_TCK)

cpu_ticks() { # utime + stime of a process (fields 14 and 15; the command name may contain spaces)
    sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 }'
}
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
percent() { # ticks wall_ms
    awk -v c="$1" -v hz="$hz" -v ms="$2" 'BEGIN { printf "%.2f", 100 * (c / hz) / (ms / 1000) }'
}
cleanup() {
    kubectl delete pods -l "$label" --grace-period=1 --wait=false >/dev/null 2>&1 || true
}
trap cleanup EXIT

echo "== bench-probes: $n pods of $image, exec liveness + httpGet readiness every 1 s, agent pid $agent_pid"
manifest=$(mktemp)
{
    echo '{"apiVersion": "v1", "kind": "List", "items": ['
    for i in $(seq 1 "$n"); do
        [[ $i -gt 1 ]] && echo ','
        printf '{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probes-%d", "labels": {"%s": "1"}},' "$i" "$label"
        printf ' "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "web", "image": "%s",' "$image"
        printf ' "imagePullPolicy": "IfNotPresent",'
        printf ' "command": ["sh", "-c", "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www"],'
        printf ' "ports": [{"name": "http", "containerPort": 8080}],'
        printf ' "livenessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1, "failureThreshold": 3},'
        printf ' "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},'
        printf ' "resources": {"requests": {"cpu": "1m", "memory": "4Mi"}}}]}}'
    done
    echo ']}'
} >"$manifest"
t0=$(now_ms)
kubectl create -f "$manifest" >/dev/null
rm -f "$manifest"
deadline=$(( $(date +%s) + 900 ))
while :; do
    ready=$(kubectl get pods -l "$label" --no-headers 2>/dev/null | awk '$2 ~ /^1\/1$/ && $3 == "Running"' | wc -l)
    [[ $ready -ge $n ]] && break
    if [[ $(date +%s) -gt $deadline ]]; then
        echo "bench-probes: only $ready of $n pods Ready after 900 s" >&2
        kubectl get pods -l "$label" --no-headers | awk '$2 !~ /^1\/1$/' | head -20 >&2
        exit 1
    fi
    sleep 1
done
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
verdict=$(awk -v v="$agent_cpu" 'BEGIN { print (v <= 10) ? "ok" : "MISSED" }')
echo "agent CPU with $n probed pods: ${agent_cpu} % of one core   (target <= 10 %: $verdict)"
if [[ -n $c0 && -n $c1 ]]; then
    echo "containerd CPU over the same time: $(percent "$((c1 - c0))" "$((w1 - w0))") % of one core (shims not counted)"
fi
echo "restarts during the run: $restarts; pods not Ready at the end: $not_ready"
