#!/usr/bin/env bash
# Prove systemd/install.sh, the units and systemd/uninstall.sh on a fresh Debian 12 with systemd
# as PID 1: a systemd-nspawn machine (recipe: docs of ../shared/reference/lab-notes.md §1).
#
#   sudo systemd/nspawn-test.sh [BIN_DIR]      (default: the repo's target/debug)
#
# Builds (once, cached in /var/cache/skiff/nspawn/rootfs) a debootstrap minbase rootfs with
# systemd, boots two ephemeral copies (server, agent), each with its own network namespace, joined
# by a temporary bridge br-skit<pid> without an address on the host (nothing else on the host
# network changes), then:
#   server: install.sh server -> skiff-apiserver, skiff-agent, containerd active, node Ready;
#           install.sh server again -> "nothing changed", same main PIDs;
#           install.sh node-kubeconfig for the agent;
#   agent:  install.sh agent --server https://SERVER:6443 --kubeconfig FILE -> node Ready;
#           again -> "nothing changed"; systemctl restart skiff-agent;
#   both:   uninstall.sh -> no unit, binary, package, /etc/skiff, /var/lib/skiff or /run/skiff left.
# apt inside the machine uses the host's network (the installer runs with nsenter in every
# namespace of the machine except the network one). Needs debootstrap and systemd-container.
set -Eeuo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN_DIR=${1:-$REPO/target/debug}
CACHE=${SKIFF_NSPAWN_CACHE:-/var/cache/skiff/nspawn}
ROOTFS=$CACHE/rootfs
MIRROR=${SKIFF_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SERVER=skit$$-s
AGENT=skit$$-a
SERVER_IP=10.213.0.2
AGENT_IP=10.213.0.3
BRIDGE=br-skit$$
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

build_rootfs() {
	[[ -x $ROOTFS/lib/systemd/systemd ]] && return 0
	command -v debootstrap >/dev/null || die "debootstrap missing (apt-get install debootstrap)"
	say "debootstrap bookworm into $ROOTFS (once, ~2 min)"
	rm -rf "$ROOTFS.tmp"
	mkdir -p "$CACHE"
	debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,iproute2,ca-certificates,procps \
		bookworm "$ROOTFS.tmp" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 ||
		die "debootstrap failed (log: $CACHE/debootstrap.log)"
	# minbase has no /etc/hosts; containerd bind-mounts it into containers.
	printf '127.0.0.1 localhost\n::1 localhost\n' >"$ROOTFS.tmp/etc/hosts"
	mv "$ROOTFS.tmp" "$ROOTFS"
}

# in_machine CMD...: run in every namespace of the machine (its network too).
in_machine() { nsenter -t "$LEADER" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "$@"; }
# in_machine_hostnet CMD...: same, but with the host's network (apt needs the mirror).
in_machine_hostnet() {
	nsenter -t "$LEADER" -m -u -i -p -C -r -w env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "$@"
}

# elapsed START: seconds since START (an $EPOCHREALTIME), 2 decimals.
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }

# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
	local name i pid
	for name in "${!NSPAWN_PIDS[@]}"; do
		pid=${NSPAWN_PIDS[$name]}
		LEADER=${LEADERS[$name]:-}
		if [[ -n $LEADER ]] && kill -0 "$LEADER" 2>/dev/null; then
			in_machine systemctl poweroff >/dev/null 2>&1 || true
		fi
		for i in $(seq 1 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.2
			((i == 50)) && kill -KILL "$pid" 2>/dev/null
		done
		wait "$pid" 2>/dev/null || true
	done
	ip link del "$BRIDGE" 2>/dev/null || true
	[[ -n ${SHARED:-} ]] && rm -rf "$SHARED"
	# the consoles are kept for a failed run only
	((FAILED)) || rm -f "$CACHE/$SERVER.console" "$CACHE/$AGENT.console"
}
trap cleanup EXIT

# boot NAME IP: boot a machine on the bridge; LEADERS[NAME] = its PID 1 (systemd).
boot() {
	local name=$1 ip=$2 i child pid leader=""
	say "booting machine $name (ephemeral copy of $ROOTFS)"
	ip link show "$BRIDGE" >/dev/null 2>&1 || {
		ip link add "$BRIDGE" type bridge
		ip link set "$BRIDGE" up
	}
	systemd-nspawn -b -D "$ROOTFS" -M "$name" --ephemeral --register=no --keep-unit --console=pipe \
		--network-bridge="$BRIDGE" --system-call-filter='@keyring bpf' --resolv-conf=copy-host \
		--bind-ro="$REPO:/skiff" --bind-ro="$BIN_DIR:/skiff-bin" --bind="$SHARED:/shared" \
		</dev/null >"$CACHE/$name.console" 2>&1 &
	pid=$!
	NSPAWN_PIDS[$name]=$pid
	for i in $(seq 1 150); do
		for child in $(pgrep -P "$pid" 2>/dev/null); do
			[[ $(cat "/proc/$child/comm" 2>/dev/null) == systemd ]] && leader=$child
		done
		LEADER=$leader
		[[ -n $leader ]] && in_machine systemctl is-system-running 2>/dev/null | grep -qE 'running|degraded' && break
		kill -0 "$pid" 2>/dev/null || die "systemd-nspawn exited (console: $CACHE/$name.console)"
		sleep 0.2
		((i == 150)) && die "machine $name did not boot in 30 s (console: $CACHE/$name.console)"
	done
	LEADERS[$name]=$leader
	pass "machine $name booted (leader pid $leader, systemd $(in_machine systemctl is-system-running))"
	# nspawn mounts the cgroup v1 controllers read-only. They stay so: no pod runs here, and in
	# this hybrid setup they are the host's hierarchies (the lab's /skiff cgroups included), which
	# uninstall.sh's cgroup cleanup must not reach. Running pods would need
	# `nsenter -t LEADER -m mount -o remount,bind,rw /sys/fs/cgroup/<controller>` (lab-notes §1).
	in_machine ip addr add "$ip/24" dev host0
	in_machine ip link set host0 up
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
	local i
	for i in $(seq 1 60); do
		node_ready "$1" && return 0
		sleep 0.5
	done
	return 1
}

# installer ARGS...: systemd/install.sh in the current machine (output on stdout+stderr).
installer() { in_machine_hostnet /skiff/systemd/install.sh "$@"; }

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
	if out=$(in_machine_hostnet /skiff/systemd/uninstall.sh 2>&1); then pass "uninstall.sh on $1"; else
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
	build_rootfs
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
