#!/usr/bin/env bash
# Join benchmark on the multi-machine lab (issue 7): how long until a node is Ready
#   1. after `install.sh agent` starts on a clean machine (apt included: uninstall.sh purged the
#      packages), and after the skiff-agent process it starts;
#   2. after the machine boots (skiff already installed, the node NotReady before).
# Target: node Ready ≤ 5 s after the agent starts (kind waits 45 s or more for CNI).
#
#   sudo scripts/bench-join.sh [RUNS]      (default 3; needs `scripts/lab.sh up N` with N ≥ 2)
#
# Uses the last agent machine of the lab; its Node object is deleted before each join so that a
# stale Ready condition cannot count. Times are wall-clock, read by polling kubectl every ~0.1 s
# (so they are upper bounds by about that much). The lab stays up afterwards.
set -Eeuo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LAB=$REPO/scripts/lab.sh
LAB_STATE=${SKIFF_LAB_STATE:-/var/lib/skiff-lab}
RUNS=${1:-3}
TARGET=5

say() { printf 'bench-join: %s\n' "$*" >&2; }
die() {
	say "ERROR: $*"
	exit 1
}

[[ $(id -u) -eq 0 ]] || die "must run as root"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive number"
[[ -f $LAB_STATE/lab.env ]] || die "the lab is down: scripts/lab.sh up 3"
machines=$(sed -n 's/^MACHINES=//p' "$LAB_STATE/lab.env")
((machines >= 2)) || die "the lab needs an agent machine: scripts/lab.sh down && scripts/lab.sh up 3"
M=lab-agent$((machines - 1))
export KUBECONFIG=$LAB_STATE/admin.kubeconfig
CACHE=$(mktemp -d)
trap 'rm -rf "$CACHE"' EXIT
k() { kubectl --cache-dir "$CACHE" "$@"; }

ready() { k get node "$M" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null; }

# wait_ready SECONDS: READY_AT = $EPOCHREALTIME when the node was first seen Ready.
wait_ready() {
	local deadline=$((SECONDS + $1))
	while ((SECONDS < deadline)); do
		if [[ $(ready) == True ]]; then
			READY_AT=$EPOCHREALTIME
			return 0
		fi
		sleep 0.05
	done
	return 1
}

# agent_started: the realtime at which systemd started the current skiff-agent process in M.
agent_started() {
	local ts
	ts=$("$LAB" shell "$M" systemctl show -p ExecMainStartTimestamp --value --timestamp=us+utc skiff-agent.service)
	[[ -n $ts ]] || return 1
	date -d "$ts" +%s.%N
}

diff_s() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# stats NAME VALUES...: min / median / max.
stats() {
	local name=$1
	shift
	printf '%s\n' "$@" | sort -n | awk -v n="$name" '{ v[NR] = $1 } END {
		printf "  %-34s min %5.2f s   median %5.2f s   max %5.2f s   (%d runs)\n", n, v[1], v[int((NR + 1) / 2)], v[NR], NR }'
}

declare -a install_ready=() agent_ready=() boot_ready=() boot_agent_ready=()
READY_AT=""

say "machine $M, $RUNS run(s)"
for ((run = 1; run <= RUNS; run++)); do
	say "run $run: uninstall.sh in $M, delete node $M"
	"$LAB" shell "$M" /skiff/systemd/uninstall.sh >/dev/null 2>&1 || die "uninstall.sh failed in $M"
	k delete node "$M" --ignore-not-found --wait=true >/dev/null
	t0=$EPOCHREALTIME
	"$LAB" join "$M" >"$CACHE/join.log" 2>&1 &
	join_pid=$!
	if ! wait_ready 180; then
		wait "$join_pid" || true
		cat "$CACHE/join.log" >&2
		die "node $M did not become Ready within 180 s of install.sh agent"
	fi
	wait "$join_pid" || {
		cat "$CACHE/join.log" >&2
		die "lab.sh join $M failed"
	}
	started=$(agent_started)
	install_ready+=("$(diff_s "$t0" "$READY_AT")")
	agent_ready+=("$(diff_s "$started" "$READY_AT")")
	say "run $run: install.sh agent -> Ready ${install_ready[-1]} s; skiff-agent start -> Ready ${agent_ready[-1]} s"

	say "run $run: stop $M, wait for NotReady"
	"$LAB" stop "$M" >/dev/null 2>&1
	deadline=$((SECONDS + 90))
	until [[ $(ready) != True ]]; do
		((SECONDS < deadline)) || die "node $M still Ready 90 s after its machine stopped"
		sleep 1
	done
	t0=$EPOCHREALTIME
	"$LAB" start "$M" >"$CACHE/start.log" 2>&1 &
	start_pid=$!
	wait_ready 120 || die "node $M did not become Ready within 120 s of boot"
	wait "$start_pid" || {
		cat "$CACHE/start.log" >&2
		die "lab.sh start $M failed"
	}
	started=$(agent_started)
	boot_ready+=("$(diff_s "$t0" "$READY_AT")")
	boot_agent_ready+=("$(diff_s "$started" "$READY_AT")")
	say "run $run: machine boot -> Ready ${boot_ready[-1]} s; skiff-agent start -> Ready ${boot_agent_ready[-1]} s"
done

echo "bench-join: node $M, load $(cut -d' ' -f1-3 /proc/loadavg)"
stats "install.sh agent -> node Ready" "${install_ready[@]}"
stats "  skiff-agent start -> node Ready" "${agent_ready[@]}"
stats "machine boot -> node Ready" "${boot_ready[@]}"
stats "  skiff-agent start -> node Ready" "${boot_agent_ready[@]}"
worst=$(printf '%s\n' "${agent_ready[@]}" "${boot_agent_ready[@]}" | sort -n | tail -n 1)
if awk -v w="$worst" -v t="$TARGET" 'BEGIN { exit !(w <= t) }'; then
	echo "target: node Ready ≤ ${TARGET} s after the agent starts: met (worst ${worst} s)"
else
	echo "target: node Ready ≤ ${TARGET} s after the agent starts: MISSED (worst ${worst} s)"
	exit 1
fi
