#!/usr/bin/env bash
# Prove systemd/install.sh, the units and systemd/uninstall.sh on a fresh Debian 12 with systemd
# as PID 1: a systemd-nspawn machine (recipe: docs of ../shared/reference/lab-notes.md §1).
#
#   sudo systemd/nspawn-test.sh [BIN_DIR]      (default: the repo's target/debug)
#
# Builds (once, cached in /var/cache/skiff/nspawn/rootfs) a debootstrap minbase rootfs with
# systemd, boots two ephemeral copies (server, agent), each with its own network namespace, joined
# by a temporary bridge br-skit<pid> (10.213.0.1/24 on the host; the machines reach only DNS and
# the Debian mirror through a temporary NAT, nft table ip skit<pid>), then:
#   server: install.sh server -> skiff-apiserver, skiff-agent, containerd active, node Ready;
#           install.sh server again -> "nothing changed", same main PIDs;
#           install.sh node-kubeconfig for the agent;
#   agent:  install.sh agent --server https://SERVER:6443 --kubeconfig FILE -> node Ready;
#           again -> "nothing changed"; systemctl restart skiff-agent;
#   both:   uninstall.sh -> no unit, binary, package, /etc/skiff, /var/lib/skiff or /run/skiff left.
# install.sh and uninstall.sh run in every namespace of the machine, its network included (as on a
# VM: `install.sh server` talks to its own API server). Needs debootstrap and systemd-container.
# Helpers shared with scripts/lab.sh: scripts/nspawn-lib.sh.
set -Eeuo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=../scripts/lib.sh
source "$REPO/scripts/lib.sh"
# shellcheck source-path=SCRIPTDIR source=../scripts/nspawn-lib.sh
source "$REPO/scripts/nspawn-lib.sh"
BIN_DIR=${1:-$REPO/target/debug}
CACHE=$NSPAWN_CACHE
ROOTFS=$NSPAWN_ROOTFS
SERVER=skit$$-s
AGENT=skit$$-a
SERVER_IP=10.213.0.2
AGENT_IP=10.213.0.3
HOST_IP=10.213.0.1
BRIDGE=br-skit$$
NAT_TABLE=skit$$
declare -A LEADERS=() NSPAWN_PIDS=()
LEADER=""
SHARED=""
T_AGENT=""
FAILED=0

say() { printf 'nspawn-test: %s\n' "$*" >&2; }
pass() { say "PASS: $*"; }
fail() {
	say "FAIL: $*"
	FAILED=1
}
# check DESCRIPTION COMMAND...: PASS when COMMAND succeeds, else FAIL.
check() {
	local what=$1
	shift
	if "$@"; then
		pass "$what"
	else
		fail "$what"
		return 1
	fi
}
die() {
	say "ERROR: $*"
	exit 1
}

[[ $(id -u) -eq 0 ]] || die "must run as root"
command -v systemd-nspawn >/dev/null || die "systemd-nspawn missing (apt-get install systemd-container)"
for bin in skiff-apiserver skiff-agent skiff-cni; do
	[[ -x $BIN_DIR/$bin ]] || die "$BIN_DIR/$bin missing (cargo build)"
done

# in_machine CMD...: run in every namespace of the machine (its network too).
in_machine() { nspawn_in "$LEADER" "$@"; }

# elapsed START: seconds since START (an $EPOCHREALTIME), 2 decimals.
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }

# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
	local name pid
	for name in "${!NSPAWN_PIDS[@]}"; do
		pid=${NSPAWN_PIDS[$name]}
		nspawn_poweroff "$pid" "${LEADERS[$name]:-}" 10
		wait "$pid" 2>/dev/null || true
	done
	ip link del "$BRIDGE" 2>/dev/null || true
	nspawn_nat_remove "$NAT_TABLE"
	[[ -n ${SHARED:-} ]] && rm -rf "$SHARED"
	# the consoles are kept for a failed run only
	((FAILED)) || rm -f "$CACHE/$SERVER.console" "$CACHE/$AGENT.console"
}
trap cleanup EXIT

# boot NAME IP: boot a machine on the bridge; LEADERS[NAME] = its PID 1 (systemd).
boot() {
	local name=$1 ip=$2 pid leader
	say "booting machine $name (ephemeral copy of $ROOTFS)"
	ip link show "$BRIDGE" >/dev/null 2>&1 || {
		ip link add "$BRIDGE" type bridge
		ip addr add "$HOST_IP/24" dev "$BRIDGE"
		ip link set "$BRIDGE" up
		nspawn_nat_setup "$NAT_TABLE" "$BRIDGE" "${HOST_IP%.*}.0/24"
	}
	nspawn_start "$name" "$ROOTFS" "$BRIDGE" "$CACHE/$name.console" "" --ephemeral --resolv-conf=copy-host \
		--bind-ro="$REPO:/skiff" --bind-ro="$BIN_DIR:/skiff-bin" --bind="$SHARED:/shared"
	pid=$NSPAWN_PID
	NSPAWN_PIDS[$name]=$pid
	nspawn_wait_booted "$pid" 30 || die "machine $name did not boot in 30 s (console: $CACHE/$name.console)"
	leader=$NSPAWN_LEADER
	LEADER=$leader
	LEADERS[$name]=$leader
	pass "machine $name booted (leader pid $leader, systemd $(in_machine systemctl is-system-running))"
	# nspawn mounts the cgroup v1 controllers read-only. They stay so: no pod runs here, and this
	# machine is started from the host's root cgroups, so they are the host's hierarchies (the
	# host lab's /skiff cgroups included), which uninstall.sh's cgroup cleanup must not reach.
	# scripts/lab.sh runs pods: it starts each machine from its own cgroup (nspawn_cgroup_create)
	# and then makes them writable (nspawn_cgroups_rw).
	in_machine ip addr add "$ip/24" dev host0
	in_machine ip link set host0 up
	in_machine ip route add default via "$HOST_IP" dev host0
}

unit_pids() {
	in_machine systemctl show -p MainPID --value skiff-apiserver.service skiff-agent.service | tr '\n' ' '
}

# node_ready NODE: asked from the server machine's network with its admin kubeconfig.
# shellcheck disable=SC2317 # called through check()
node_ready() {
	local server=${LEADERS[$SERVER]}
	[[ $(nsenter -t "$server" -n kubectl --kubeconfig "/proc/$server/root/var/lib/skiff/apiserver/admin.kubeconfig" \
		get node "$1" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}

# shellcheck disable=SC2317 # called through check()
wait_node_ready() {
	for _ in $(seq 1 60); do
		node_ready "$1" && return 0
		sleep 0.5
	done
	return 1
}

# installer ARGS...: systemd/install.sh in the current machine (output on stdout+stderr).
installer() { in_machine /skiff/systemd/install.sh "$@"; }

# twice DESCRIPTION ARGS...: install.sh ARGS must succeed; a second run must change nothing
# and restart no unit.
twice() {
	local what=$1 out pids
	shift
	say "install.sh $what (first run)"
	local t0=$EPOCHREALTIME
	if out=$(installer "$@" 2>&1); then pass "install.sh $what ($(elapsed "$t0") s, apt included)"; else
		printf '%s\n' "$out" >&2
		fail "install.sh $what"
		return 1
	fi
	printf '%s\n' "$out" | tail -n 8 >&2
	pids=$(unit_pids)
	say "install.sh $what (second run)"
	if out=$(installer "$@" 2>&1) && grep -q "nothing changed" <<<"$out"; then
		pass "second install.sh $what changes nothing"
	else
		printf '%s\n' "$out" >&2
		fail "second install.sh $what changed something"
	fi
	if ! check "units not restarted (main pids $pids-> $(unit_pids))" test "$(unit_pids)" == "$pids"; then
		in_machine journalctl -u skiff-agent -u skiff-apiserver --no-pager -n 40 >&2 || true
	fi
}

uninstall_check() {
	local out f left=""
	say "uninstall.sh on $1"
	if out=$(in_machine /skiff/systemd/uninstall.sh 2>&1); then pass "uninstall.sh on $1"; else
		printf '%s\n' "$out" >&2
		fail "uninstall.sh on $1"
	fi
	for f in /etc/skiff /var/lib/skiff /run/skiff /usr/local/bin/skiff-agent /usr/local/bin/skiff-apiserver \
		/opt/cni/bin/skiff-cni /etc/systemd/system/skiff-agent.service /etc/systemd/system/skiff-apiserver.service \
		/etc/containerd/config.toml /usr/bin/containerd /usr/sbin/runc /var/lib/containerd /var/log/pods; do
		[[ -e /proc/$LEADER/root$f ]] && left+=" $f"
	done
	in_machine ip link show skiff0 >/dev/null 2>&1 && left+=" link:skiff0"
	check "uninstall.sh left nothing on $1${left:+ (left:$left)}" test -z "$left"
}

main() {
	local u
	nspawn_build_rootfs
	SHARED=$(mktemp -d)
	boot "$SERVER" "$SERVER_IP"
	boot "$AGENT" "$AGENT_IP"

	LEADER=${LEADERS[$SERVER]}
	twice server server --bin-dir /skiff-bin --advertise-address "$SERVER_IP" --node-ip "$SERVER_IP" --node-name "$SERVER" || return 0
	for u in skiff-apiserver skiff-agent containerd; do
		check "$u is active on $SERVER" in_machine systemctl is-active --quiet "$u"
	done
	check "node $SERVER is Ready within 30 s (kubectl)" wait_node_ready "$SERVER"
	check "install.sh node-kubeconfig $AGENT" installer node-kubeconfig "$AGENT" "/shared/$AGENT.kubeconfig"

	LEADER=${LEADERS[$AGENT]}
	T_AGENT=$EPOCHREALTIME
	twice agent agent --server "https://$SERVER_IP:6443" --kubeconfig "/shared/$AGENT.kubeconfig" \
		--bin-dir /skiff-bin --node-ip "$AGENT_IP" --node-name "$AGENT"
	check "skiff-agent is active on $AGENT" in_machine systemctl is-active --quiet skiff-agent
	check "skiff-apiserver is not installed on $AGENT" test ! -e "/proc/$LEADER/root/etc/systemd/system/skiff-apiserver.service"
	check "node $AGENT is Ready within 30 s (kubectl)" wait_node_ready "$AGENT"
	say "install.sh agent started: node $AGENT Ready $(elapsed "$T_AGENT") s later (apt and the second run included)"
	local t0=$EPOCHREALTIME
	check "skiff-agent restarts on $AGENT (Type=notify, READY=1 after registration)" in_machine systemctl restart skiff-agent
	say "systemctl restart skiff-agent returned after $(elapsed "$t0") s"
	check "node $AGENT is Ready after the restart" wait_node_ready "$AGENT"

	uninstall_check "$AGENT"
	LEADER=${LEADERS[$SERVER]}
	uninstall_check "$SERVER"
}

main
if ((FAILED)); then say "some checks FAILED"; else say "all checks passed"; fi
exit "$FAILED"
