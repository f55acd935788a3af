#!/usr/bin/env bash
# Workload benchmark (a measurement, not a test). Needs a running lab (sudo ./scripts/up.sh).
#
#   sudo ./scripts/bench-workloads.sh [N]      default N=100
#
# Creates a Deployment of N busybox `sleep` pods (no requests; a node takes 110 pods) and reports the time
# from `kubectl create deployment` to all N available (`kubectl rollout status`), then deletes it and reports
# the time until every pod is gone (garbage collector, graceful deletion by the agent). The API server's RSS is
# printed before, with the N pods and after; the controllers and the garbage collector run inside it.
set -euo pipefail

n=${1:-100}
state=${SKIFF_STATE:-/var/lib/skiff}
export KUBECONFIG=${KUBECONFIG:-$state/apiserver/admin.kubeconfig}
[[ -f $state/pids/apiserver.pid ]] || { echo "bench-workloads: the lab is not up (run sudo ./scripts/up.sh)" >&2; exit 1; }
api_pid=$(cat "$state/pids/apiserver.pid")
cache=$(mktemp -d)
trap 'kubectl --cache-dir "$cache" delete deployment bench-workloads --ignore-not-found >/dev/null 2>&1 || true; rm -rf "$cache"' EXIT
k() { kubectl --cache-dir "$cache" "$@"; }
rss_mib() { awk '/VmRSS/ { print int($2 / 1024) }' "/proc/$api_pid/status"; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# Warm-up: the image is pulled, so no run measures a pull.
k run bench-workloads-warm --image=busybox:1.35 --restart=Never --overrides='{"spec":{"terminationGracePeriodSeconds":0}}' -- true >/dev/null
k wait --for=jsonpath='{.status.phase}'=Succeeded pod/bench-workloads-warm --timeout=120s >/dev/null
k delete pod bench-workloads-warm --wait=true >/dev/null

echo "API server RSS before: $(rss_mib) MiB"
start=$(now)
k create deployment bench-workloads --image=busybox:1.35 --replicas="$n" -- sleep 3600 >/dev/null
k rollout status deployment/bench-workloads --timeout=600s >/dev/null
ready=$(now)
echo "Deployment of $n pods available in $(secs "$start" "$ready") s; API server RSS $(rss_mib) MiB"
k delete deployment bench-workloads >/dev/null
gone_start=$(now)
for _ in $(seq 1 600); do
    left=$(k get pods -l app=bench-workloads -o name | wc -l)
    [[ $left -eq 0 ]] && break
    sleep 0.5
done
echo "all $n pods gone $(secs "$gone_start" "$(now)") s after the delete ($left left); API server RSS $(rss_mib) MiB"
