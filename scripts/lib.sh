# shellcheck shell=bash
# Shared helpers of the one-host lab (scripts/up.sh, down.sh, build-images.sh).
# Sourced, never executed. Every path and name here follows docs/contracts.md;
# the SKIFF_* environment variables override the defaults.

# --- layout (docs/contracts.md, "Lab layout") ---------------------------------
# shellcheck disable=SC2034 # used by the scripts that source this file
SKIFF_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${SKIFF_STATE:-/var/lib/skiff}
RUN_DIR=${SKIFF_RUN_DIR:-/run/skiff}
CACHE_DIR=${SKIFF_CACHE_DIR:-/var/cache/skiff}
BIN_DIR=${SKIFF_BIN_DIR:-$SKIFF_REPO/target/release}
REGISTRY_PORT=${SKIFF_REGISTRY_PORT:-5000}
REGISTRY=127.0.0.1:$REGISTRY_PORT
REGISTRY_DIR=${SKIFF_REGISTRY_DIR:-$CACHE_DIR/registry}
APISERVER_PORT=${SKIFF_SECURE_PORT:-6443}
AGENT_PORT=${SKIFF_AGENT_PORT:-10250}
CONTAINERD_DIR=$STATE/containerd
CONTAINERD_CONFIG=$CONTAINERD_DIR/config.toml
CONTAINERD_STATE=$RUN_DIR/containerd/state
CONTAINERD_SOCK=$RUN_DIR/containerd/containerd.sock
CTR_NAMESPACE=${SKIFF_CONTAINERD_NAMESPACE:-skiff}
# Namespace used only by `build-images.sh --verify`.
SELFTEST_NAMESPACE=skiff-selftest
# containerd namespace of bench-startup's runtime floor (examples/bench_floor), apart from the agent's.
FLOOR_NAMESPACE=skiff-bench-floor
APISERVER_DIR=$STATE/apiserver
ADMIN_KUBECONFIG=$APISERVER_DIR/admin.kubeconfig
AGENT_DIR=$STATE/agent
# local-path volumes (the API server's --local-path-root and the agent's --storage-dir)
STORAGE_DIR=$STATE/storage
NODE_KUBECONFIG=$AGENT_DIR/kubeconfig
REGISTRIES_YAML=$AGENT_DIR/registries.yaml
CNI_CONF_DIR=$STATE/cni/net.d
CNI_BIN_DIRS=$BIN_DIR:/usr/lib/cni
CNI_NETWORK=skiff
CNI_BRIDGE=skiff0
CNI_NFT_TABLE=skiff-cni
# The agent's service proxy (cluster IPs); see agent/src/proxy.
PROXY_NFT_TABLE=skiff-proxy
VXLAN_DEVICE=skiff.vxlan
# The label of the agent's cluster DNS address on the loopback interface.
DNS_ADDRESS_LABEL=lo:skiff-dns
# Where pods reach the one-node lab's API server (the `kubernetes` Service's endpoint): an address of the
# loopback interface, as pods cannot reach 127.0.0.1 of the host. Link-local, so it never leaves the host.
API_ADDRESS=169.254.64.1
API_ADDRESS_LABEL=lo:skiff-api
CNI_IPAM_DIR=/var/lib/cni/networks/$CNI_NETWORK
CNI_RESULTS_DIR=/var/lib/cni/results
# Written by up.sh only with SKIFF_CNI=reference.
CNI_REFERENCE_CONFLIST=$CNI_CONF_DIR/05-reference.conflist
POD_LOG_DIR=${SKIFF_POD_LOG_DIR:-/var/log/pods}
CONTAINER_LOG_DIR=${SKIFF_CONTAINER_LOG_DIR:-/var/log/containers}
CLUSTER_CIDR=${SKIFF_CLUSTER_CIDR:-10.244.0.0/16}
PIDS_DIR=$STATE/pids
LOGS_DIR=$STATE/logs

# --- messages -------------------------------------------------------------------
SCRIPT_NAME=$(basename "$0")
CURRENT_STEP=""

log() { printf '%s: %s\n' "$SCRIPT_NAME" "$*" >&2; }

# in_step: " in step 'NAME'" while a step runs, else nothing.
in_step() {
	[[ -n $CURRENT_STEP ]] && printf " in step '%s'" "$CURRENT_STEP"
	return 0
}

die() {
	printf '%s: ERROR%s: %s\n' "$SCRIPT_NAME" "$(in_step)" "$*" >&2
	exit 1
}

# step NAME: announce a step; its name is repeated if the step fails.
step() {
	CURRENT_STEP=$1
	log "$1"
}

# An unexpected command failure (set -e) still names the step it happened in.
on_unexpected_error() {
	local rc=$1 line=$2 cmd=$3
	printf '%s: ERROR%s: command failed (exit %s, line %s): %s\n' "$SCRIPT_NAME" \
		"$(in_step)" "$rc" "$line" "$cmd" >&2
}

# Only the main shell reports: a failure inside $(...) or <(...) that matters makes
# the command using it fail too.
install_error_trap() {
	trap '((BASH_SUBSHELL)) || on_unexpected_error $? $LINENO "$BASH_COMMAND"' ERR
}

# lock_state: one up.sh/down.sh at a time (a lock on the state directory itself, so
# nothing is left behind when down.sh removes it).
LOCK_FD=""
lock_state() {
	[[ -d $STATE ]] || return 0
	exec {LOCK_FD}<"$STATE"
	flock -n "$LOCK_FD" || die "another scripts/up.sh or scripts/down.sh is running on $STATE"
}

require_root() {
	[[ $(id -u) -eq 0 ]] || die "must run as root (try: sudo $0)"
}

# tail_log FILE [N]: the last lines of a log file, indented, on stderr. Rust
# backtrace frames (RUST_BACKTRACE=1) are left out so the error itself shows.
tail_log() {
	local file=$1 lines=${2:-20}
	if [[ -s $file ]]; then
		printf '%s: last %s lines of %s (backtrace frames omitted):\n' "$SCRIPT_NAME" "$lines" "$file" >&2
		grep -vE '^ +([0-9]+: |at )' "$file" | tail -n "$lines" | sed 's/^/    /' >&2 || true
	fi
}

# wait_until TIMEOUT_SECONDS COMMAND...: poll every 0.2 s; non-zero on timeout.
wait_until() {
	local timeout=$1
	shift
	local deadline=$((SECONDS + timeout))
	until "$@" >/dev/null 2>&1; do
		((SECONDS < deadline)) || return 1
		sleep 0.2
	done
}

# write_if_changed FILE: stdin becomes FILE unless FILE already has that content.
# Returns 0 when the file was (re)written, 1 when it was already up to date.
write_if_changed() {
	local file=$1 tmp
	tmp=$(mktemp "$file.XXXXXX")
	cat >"$tmp"
	if [[ -f $file ]] && cmp -s "$tmp" "$file"; then
		rm -f "$tmp"
		return 1
	fi
	mv -f "$tmp" "$file"
}

# --- lab processes: pid files, liveness, start, stop -----------------------------
pid_file() { printf '%s/%s.pid\n' "$PIDS_DIR" "$1"; }
log_file() { printf '%s/%s.log\n' "$LOGS_DIR" "$1"; }

# proc_matches PID PATTERN: the process exists and its program (argv[0], or argv[1]
# for a script run by an interpreter) ends with PATTERN (guards against a recycled
# PID in a stale pid file).
proc_matches() {
	local pid=$1 pattern=$2 arg
	[[ $pid =~ ^[0-9]+$ && -r /proc/$pid/cmdline ]] || return 1
	while read -r arg; do
		[[ $arg == *"$pattern" ]] && return 0
	done < <(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | head -n 2)
	return 1
}

# lab_pid NAME PATTERN: print the PID of the lab process NAME if it is alive.
lab_pid() {
	local name=$1 pattern=$2 file pid
	file=$(pid_file "$name")
	[[ -f $file ]] || return 1
	pid=$(<"$file")
	proc_matches "$pid" "$pattern" || return 1
	printf '%s\n' "$pid"
}

# start_daemon NAME COMMAND...: run COMMAND detached (own session, survives the
# script and the terminal), output appended to the log, PID in the pid file.
start_daemon() {
	local name=$1
	shift
	local log pid
	mkdir -p "$PIDS_DIR" "$LOGS_DIR"
	log=$(log_file "$name")
	printf '==== %s: starting %s\n' "$(date -u +%FT%TZ)" "$*" >>"$log"
	# In a non-interactive shell a background job is not a process group leader,
	# so setsid execs in place and $! is the daemon itself.
	# The daemon must not inherit the lock of lock_state.
	if [[ -n $LOCK_FD ]]; then
		setsid nohup "$@" >>"$log" 2>&1 </dev/null {LOCK_FD}<&- &
	else
		setsid nohup "$@" >>"$log" 2>&1 </dev/null &
	fi
	pid=$!
	printf '%s\n' "$pid" >"$(pid_file "$name")"
}

# lab_signature NAME: a regex for the command line of the lab process NAME (as
# start_daemon runs it), to find it even without its pid file.
lab_signature() {
	case $1 in
	containerd) printf '^containerd --config %s$' "$CONTAINERD_CONFIG" ;;
	registry) printf '^docker-registry serve %s$' "$STATE/registry/config.yml" ;;
	apiserver) printf 'skiff-apiserver serve --data-dir %s ' "$APISERVER_DIR" ;;
	agent) printf 'skiff-agent --kubeconfig %s ' "$NODE_KUBECONFIG" ;;
	*) return 1 ;;
	esac
}

# lab_pids NAME PATTERN: PIDs of the lab process NAME: the pid file's (while it is
# still that program) and any process with the lab's command line for it.
lab_pids() {
	local name=$1 pattern=$2 pid
	{
		if pid=$(lab_pid "$name" "$pattern"); then printf '%s\n' "$pid"; fi
		pgrep -f "$(lab_signature "$name")" 2>/dev/null || true
	} | sort -un
}

# stop_daemons TIMEOUT NAME:PATTERN...: SIGTERM the lab processes (all at once),
# SIGKILL whatever is left after TIMEOUT seconds; only those PIDs. The pid files are
# removed.
stop_daemons() {
	local timeout=$1 spec name pattern pid
	shift
	local -a pids=()
	for spec in "$@"; do
		name=${spec%%:*} pattern=${spec#*:}
		for pid in $(lab_pids "$name" "$pattern"); do
			log "stopping $name (pid $pid)"
			kill -TERM "$pid" 2>/dev/null || true
			pids+=("$pid")
		done
		rm -f "$(pid_file "$name")"
	done
	((${#pids[@]})) || return 0
	if ! wait_until "$timeout" pids_gone "${pids[@]}"; then
		for pid in "${pids[@]}"; do
			pid_gone "$pid" && continue
			log "pid $pid did not stop within ${timeout}s: SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
		done
		wait_until 5 pids_gone "${pids[@]}" || log "still running after SIGKILL: ${pids[*]}"
	fi
	# The daemons' parent is init; give it a moment to reap them, so that the PIDs are
	# really gone when this returns (kill -0 succeeds on a zombie).
	wait_until 5 pids_reaped "${pids[@]}" || true
}

pids_gone() {
	local pid
	for pid in "$@"; do pid_gone "$pid" || return 1; done
}

pids_reaped() {
	local pid
	for pid in "$@"; do ! kill -0 "$pid" 2>/dev/null || return 1; done
}

pid_gone() { ! not_zombie "$1"; }

# not_zombie PID: the process exists and has not exited (an unreaped zombie has).
not_zombie() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[[ ${stat:0:1} != Z ]]
}

# daemon_alive NAME: the PID of its pid file exists (used right after start_daemon,
# while setsid/nohup/env are still exec-ing into the program).
daemon_alive() {
	local file
	file=$(pid_file "$1")
	[[ -f $file ]] && kill -0 "$(<"$file")" 2>/dev/null
}

# --- ports -----------------------------------------------------------------------
# port_listeners PORT: the `ss` lines of TCP listeners on PORT (any address).
port_listeners() {
	ss -Hltnp "sport = :$1" 2>/dev/null || true
}

# ensure_port_free PORT WHAT: fail with the owner when someone else listens there.
ensure_port_free() {
	local port=$1 what=$2 listeners
	listeners=$(port_listeners "$port")
	[[ -z $listeners ]] && return 0
	die "port $port (needed by $what) is already taken by another process: $(
		grep -o 'users:(.*)' <<<"$listeners" | head -n 1
	); stop it or choose another port (see docs/contracts.md)"
}

# --- containerd client ------------------------------------------------------------
lab_ctr() { ctr --address "$CONTAINERD_SOCK" "$@"; }

containerd_up() { [[ -S $CONTAINERD_SOCK ]] && lab_ctr version >/dev/null 2>&1; }

registry_up() { curl -fs -o /dev/null --max-time 2 "http://$REGISTRY/v2/"; }

# registry_has REPO TAG: the lab registry serves a manifest for REPO:TAG.
registry_has() {
	curl -fs -o /dev/null --max-time 5 -I \
		-H 'Accept: application/vnd.oci.image.index.v1+json' \
		-H 'Accept: application/vnd.oci.image.manifest.v1+json' \
		-H 'Accept: application/vnd.docker.distribution.manifest.list.v2+json' \
		-H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
		"http://$REGISTRY/v2/$1/manifests/$2"
}

# --- Debian packages ----------------------------------------------------------------
APT_UPDATED=0

apt_update_once() {
	((APT_UPDATED)) && return 0
	log "apt-get update"
	if ! apt-get update -q -o DPkg::Lock::Timeout=300 >>"$(apt_log)" 2>&1; then
		tail_log "$(apt_log)"
		die "apt-get update failed (is the Debian mirror reachable?)"
	fi
	APT_UPDATED=1
}

apt_log() {
	mkdir -p "$LOGS_DIR"
	printf '%s/apt.log\n' "$LOGS_DIR"
}

# apt_install PACKAGE...: install with no recommends and without letting the
# packages start their own services (a system docker-registry would take :5000).
apt_install() {
	local policy=/usr/sbin/policy-rc.d own_policy=0 rc=0
	apt_update_once
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\n# written by skiff scripts/lib.sh during apt-get install\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		own_policy=1
	fi
	log "apt-get install $*"
	# A fresh cloud machine may still run unattended-upgrades: wait for the dpkg lock.
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		-o DPkg::Lock::Timeout=300 "$@" \
		>>"$(apt_log)" 2>&1 || rc=$?
	((own_policy)) && rm -f "$policy"
	if ((rc != 0)); then
		tail_log "$(apt_log)"
		die "cannot install Debian package(s): $* (log: $(apt_log))"
	fi
}

# apt_candidate PACKAGE: the version apt would take ("" when unknown).
apt_candidate() {
	local v
	v=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2; exit}')
	[[ $v == "(none)" ]] && v=""
	printf '%s\n' "$v"
}
