#!/usr/bin/env bash
# Bring up the one-host skiff lab (see docs/contracts.md, "Lab layout").
#
#   sudo ./scripts/up.sh            then use the last line:  eval "$(sudo ./scripts/up.sh)"
#
# Installs missing Debian packages, builds the release binaries, starts a private
# containerd, the registry on 127.0.0.1:5000 with the offline images, skiff-apiserver
# and skiff-agent for this host, and waits until the node is Ready. Progress goes to
# stderr, logs to $STATE/logs; the last line on stdout is `export KUBECONFIG=...`.
# Running it again while the lab is up changes nothing.
#
# Environment: SKIFF_STATE, SKIFF_REGISTRY_PORT, SKIFF_SECURE_PORT, SKIFF_AGENT_PORT,
# SKIFF_CACHE_DIR, SKIFF_BIN_DIR, SKIFF_NODE_NAME (default: hostname, lowercased),
# SKIFF_SKIP_BUILD=1 (use the binaries in SKIFF_BIN_DIR as they are),
# SKIFF_READY_TIMEOUT (seconds, default 120), RUST_LOG (default info),
# SKIFF_CNI=reference (Debian's bridge + host-local + portmap instead of skiff-cni).
set -Eeuo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

READY_TIMEOUT=${SKIFF_READY_TIMEOUT:-120}
NODE_NAME=""

# --- packages -------------------------------------------------------------------------
# command or file that proves a package is there -> Debian package
PACKAGES=(
	"containerd:containerd"
	"runc:runc"
	"protoc:protobuf-compiler"
	"docker-registry:docker-registry"
	"skopeo:skopeo"
	"nft:nftables"
	"iptables:iptables"
	"ip:iproute2"
	"curl:curl"
	"/etc/ssl/certs/ca-certificates.crt:ca-certificates"
	"setsid:util-linux"
	"nsenter:util-linux"
	"pgrep:procps"
	# the reference plugins in /usr/lib/cni, the lab's second CNI bin dir
	"/usr/lib/cni/loopback:containernetworking-plugins"
	# cargo's C builds (ring) need a compiler and the libc headers.
	"cc:gcc"
	"/usr/include/stdio.h:libc6-dev"
)

install_packages() {
	local entry probe pkg
	local -a missing=()
	for entry in "${PACKAGES[@]}"; do
		probe=${entry%%:*} pkg=${entry#*:}
		if [[ $probe == /* ]]; then [[ -e $probe ]] && continue; else command -v "$probe" >/dev/null && continue; fi
		[[ " ${missing[*]} " == *" $pkg "* ]] || missing+=("$pkg")
	done
	((${#missing[@]} == 0)) && return 0
	apt_install "${missing[@]}"
	# On a systemd host the package enables a registry service on :5000 at boot; the
	# lab runs its own, so the one installed just now is disabled.
	if [[ " ${missing[*]} " == *" docker-registry "* && -d /run/systemd/system ]]; then
		log "disabling the docker-registry system service (the lab runs its own registry)"
		systemctl disable --now docker-registry.service >>"$(apt_log)" 2>&1 || true
	fi
}

# check_ports: the lab's ports are free unless the lab process owning them is running.
check_ports() {
	lab_pid registry docker-registry >/dev/null || ensure_port_free "$REGISTRY_PORT" "the lab registry"
	lab_pid apiserver skiff-apiserver >/dev/null || ensure_port_free "$APISERVER_PORT" "skiff-apiserver"
	lab_pid agent skiff-agent >/dev/null || ensure_port_free "$AGENT_PORT" "skiff-agent"
}

# --- kernel ---------------------------------------------------------------------------
check_kernel() {
	if ! grep -qw overlay /proc/filesystems; then
		modprobe overlay 2>/dev/null || true
		grep -qw overlay /proc/filesystems ||
			die "kernel feature missing: overlay filesystem (modprobe overlay failed)"
	fi
	unshare --net true 2>/dev/null || die "kernel feature missing: network namespaces (unshare --net failed)"
	# veth and bridge are probed inside a throwaway network namespace.
	unshare --net ip link add skiffprobe0 type veth peer name skiffprobe1 2>/dev/null ||
		die "kernel feature missing: veth (ip link add type veth failed; modprobe veth?)"
	unshare --net ip link add skiffprobebr type bridge 2>/dev/null ||
		die "kernel feature missing: bridge (ip link add type bridge failed; modprobe bridge?)"
	[[ -f /sys/fs/cgroup/cgroup.controllers || -d /sys/fs/cgroup/memory ]] ||
		die "kernel feature missing: cgroups are not mounted under /sys/fs/cgroup"
}

# --- build ----------------------------------------------------------------------------
# find_cargo: cargo on PATH, in root's ~/.cargo or in the invoking user's ~/.cargo.
find_cargo() {
	local candidate home
	command -v cargo 2>/dev/null && return 0
	candidate=$HOME/.cargo/bin/cargo
	[[ -x $candidate ]] && printf '%s\n' "$candidate" && return 0
	if [[ -n ${SUDO_USER:-} ]]; then
		home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
		[[ -x $home/.cargo/bin/cargo ]] && printf '%s\n' "$home/.cargo/bin/cargo" && return 0
	fi
	return 1
}

build_binaries() {
	local cargo log=$LOGS_DIR/build.log owner
	local -a as_user=()
	if [[ ${SKIFF_SKIP_BUILD:-0} == 1 ]]; then
		log "SKIFF_SKIP_BUILD=1: using the binaries in $BIN_DIR"
	else
		cargo=$(find_cargo) || die "cargo not found: install a Rust toolchain >= 1.89 (rustup.rs)"
		# A toolchain in the invoking user's home builds as that user (rustup lives there).
		owner=$(stat -c %U "$cargo")
		if [[ $owner != root ]]; then
			as_user=(runuser -u "$owner" -- env HOME="$(getent passwd "$owner" | cut -d: -f6)")
		fi
		log "cargo build --release --locked (log: $log)"
		if ! (cd "$SKIFF_REPO" && "${as_user[@]}" env PATH="$(dirname "$cargo"):$PATH" \
			"$cargo" build --release --locked >>"$log" 2>&1); then
			tail_log "$log" 30
			die "build failure: cargo build --release --locked (log: $log)"
		fi
	fi
	local bin
	for bin in skiff-apiserver skiff-agent skiff-cni; do
		[[ -x $BIN_DIR/$bin ]] || die "build failure: $BIN_DIR/$bin is missing"
	done
}

# --- containerd -----------------------------------------------------------------------
write_containerd_config() {
	mkdir -p "$CONTAINERD_DIR/root" "$CONTAINERD_DIR/opt" "$CONTAINERD_STATE"
	write_if_changed "$CONTAINERD_CONFIG" <<-EOF || true
		# skiff lab containerd (written by scripts/up.sh); independent of any system containerd.
		version = 2
		root = "$CONTAINERD_DIR/root"
		state = "$CONTAINERD_STATE"
		disabled_plugins = ["io.containerd.grpc.v1.cri"]

		[grpc]
		  address = "$CONTAINERD_SOCK"

		[ttrpc]
		  address = "$CONTAINERD_SOCK.ttrpc"

		[debug]
		  address = ""

		[metrics]
		  address = ""

		[plugins."io.containerd.internal.v1.opt"]
		  path = "$CONTAINERD_DIR/opt"

		# No snapshotter setting: without CRI, clients name theirs; overlayfs is the
		# default of the native API and what the agent asks for.
	EOF
}

# mount_run_dir: the lab's runtime state (containerd's state, shim bundles, pinned pod namespaces,
# stdio FIFOs) is volatile by nature and lives on tmpfs, as /run does on every systemd machine. Where
# /run is a plain disk directory (containers, some CI VMs), $RUN_DIR gets a tmpfs of its own; down.sh
# unmounts it with the other lab mounts.
mount_run_dir() {
	local fstype
	mkdir -p "$RUN_DIR"
	fstype=$(findmnt -n -o FSTYPE -T "$RUN_DIR" 2>/dev/null || true)
	[[ $fstype == tmpfs ]] && return 0
	if [[ -n $(ls -A "$RUN_DIR") ]]; then
		log "$RUN_DIR is in use on $fstype (a lab started before it moved to tmpfs): keeping it"
		return 0
	fi
	mount -t tmpfs -o mode=0755,nosuid,nodev,size=256m skiff-run "$RUN_DIR" ||
		die "cannot mount a tmpfs on $RUN_DIR"
	log "mounted a tmpfs on $RUN_DIR ($(findmnt -n -o FSTYPE -T "$(dirname "$RUN_DIR")") underneath)"
}

start_containerd() {
	local pid
	if pid=$(lab_pid containerd containerd); then
		wait_ready "containerd (socket $CONTAINERD_SOCK)" containerd 30 containerd_up
		log "containerd is running (pid $pid)"
		return 0
	fi
	write_containerd_config
	[[ -S $CONTAINERD_SOCK ]] && ! containerd_up && rm -f "$CONTAINERD_SOCK" "$CONTAINERD_SOCK.ttrpc"
	[[ -S $CONTAINERD_SOCK ]] && die "another containerd already serves $CONTAINERD_SOCK"
	start_daemon containerd containerd --config "$CONTAINERD_CONFIG"
	wait_ready "containerd (socket $CONTAINERD_SOCK)" containerd 30 containerd_up
	log "containerd started (pid $(<"$(pid_file containerd)"))"
}

# --- registry + images ------------------------------------------------------------------
start_registry() {
	local pid config=$STATE/registry/config.yml
	if pid=$(lab_pid registry docker-registry); then
		wait_ready "the registry (http://$REGISTRY)" registry 30 registry_up
		log "registry is running (pid $pid)"
		return 0
	fi
	ensure_port_free "$REGISTRY_PORT" "the lab registry"
	mkdir -p "$STATE/registry" "$REGISTRY_DIR"
	write_if_changed "$config" <<-EOF || true
		# skiff lab registry (written by scripts/up.sh)
		version: 0.1
		log:
		  level: warn
		  accesslog:
		    disabled: true
		storage:
		  filesystem:
		    rootdirectory: $REGISTRY_DIR
		  delete:
		    enabled: true
		http:
		  addr: $REGISTRY
	EOF
	start_daemon registry docker-registry serve "$config"
	wait_ready "the registry (http://$REGISTRY)" registry 30 registry_up
	log "registry started on $REGISTRY (pid $(<"$(pid_file registry)"))"
}

ensure_images() {
	if registry_has library/busybox 1.35 && registry_has library/busybox latest &&
		registry_has library/nginx latest; then
		log "offline images are in the registry"
		return 0
	fi
	local log=$LOGS_DIR/images.log
	log "building the offline images (log: $log)"
	# --verify runs each new image once in the lab containerd (and cleans up).
	if ! "$SKIFF_REPO/scripts/build-images.sh" --verify >>"$log" 2>&1; then
		tail_log "$log"
		die "building the offline images failed (log: $log)"
	fi
}

# --- API server -------------------------------------------------------------------------
apiserver_ready() { curl -ksf -o /dev/null --max-time 2 "https://127.0.0.1:$APISERVER_PORT/readyz"; }

# ensure_api_address: $API_ADDRESS on the loopback interface (the API server's advertise address: the
# `kubernetes` Service sends pods there). down.sh removes it.
ensure_api_address() {
	ip -4 -o addr show dev lo | grep -q " $API_ADDRESS/32 " && return 0
	ip addr add "$API_ADDRESS/32" dev lo label "$API_ADDRESS_LABEL" ||
		die "cannot add the API server's in-cluster address $API_ADDRESS to lo"
}

start_apiserver() {
	local pid
	if pid=$(lab_pid apiserver skiff-apiserver); then
		wait_ready "skiff-apiserver" apiserver 60 apiserver_ready
		log "skiff-apiserver is running (pid $pid)"
		return 0
	fi
	ensure_port_free "$APISERVER_PORT" "skiff-apiserver"
	mkdir -p "$APISERVER_DIR"
	ensure_api_address
	start_daemon apiserver env RUST_LOG="${RUST_LOG:-info}" NO_COLOR=1 "$BIN_DIR/skiff-apiserver" serve \
		--data-dir "$APISERVER_DIR" --bind-address 0.0.0.0 --secure-port "$APISERVER_PORT" \
		--advertise-address "$API_ADDRESS" --cluster-cidr "$CLUSTER_CIDR" --node-cidr-mask-size 24 \
		--local-path-root "$STORAGE_DIR"
	wait_ready "skiff-apiserver" apiserver 60 apiserver_ready
	[[ -f $ADMIN_KUBECONFIG ]] || die "skiff-apiserver did not write $ADMIN_KUBECONFIG"
	log "skiff-apiserver started on https://127.0.0.1:$APISERVER_PORT (pid $(<"$(pid_file apiserver)"))"
}

# wait_ready WHAT NAME TIMEOUT CHECK...: wait for CHECK while the process lives.
wait_ready() {
	local what=$1 name=$2 timeout=$3
	shift 3
	local deadline=$((SECONDS + timeout))
	until "$@" >/dev/null 2>&1; do
		if ! daemon_alive "$name"; then
			tail_log "$(log_file "$name")"
			die "$what exited during start-up (log: $(log_file "$name"))"
		fi
		if ((SECONDS >= deadline)); then
			tail_log "$(log_file "$name")"
			die "$what not ready after ${timeout}s (log: $(log_file "$name"))"
		fi
		sleep 0.3
	done
}

# --- agent ------------------------------------------------------------------------------
write_agent_files() {
	mkdir -p "$AGENT_DIR" "$CNI_CONF_DIR" "$RUN_DIR" "$POD_LOG_DIR"
	if [[ ! -s $NODE_KUBECONFIG ]]; then
		"$BIN_DIR/skiff-apiserver" kubeconfig --data-dir "$APISERVER_DIR" \
			--user "system:node:$NODE_NAME" --group system:nodes \
			--server "https://127.0.0.1:$APISERVER_PORT" --out "$NODE_KUBECONFIG" \
			>>"$(log_file apiserver)" 2>&1 ||
			die "skiff-apiserver kubeconfig failed for system:node:$NODE_NAME (log: $(log_file apiserver))"
		chmod 600 "$NODE_KUBECONFIG"
	fi
	write_if_changed "$REGISTRIES_YAML" <<-EOF || true
		# skiff lab registry mirror (k3s format, written by scripts/up.sh)
		mirrors:
		  docker.io:
		    endpoint:
		      - "http://$REGISTRY"
	EOF
	write_cni_conf
}

# write_cni_conf: with SKIFF_CNI=reference, $CNI_REFERENCE_CONFLIST (sorts before the agent's
# 10-skiff.conflist, so it wins) with Debian's bridge + host-local + portmap on the lab's network
# name, bridge and IPAM dir and the node's pod CIDR (before the node exists: the first /24 of the
# cluster CIDR, which the node IPAM hands to the first node). Otherwise the agent writes skiff-cni's.
write_cni_conf() {
	local subnet="" base
	case ${SKIFF_CNI:-skiff} in
	skiff) rm -f "$CNI_REFERENCE_CONFLIST" ;;
	reference)
		if command -v kubectl >/dev/null; then
			subnet=$(kubectl --kubeconfig "$ADMIN_KUBECONFIG" --cache-dir "$STATE/kube-cache" \
				get node "$NODE_NAME" -o 'jsonpath={.spec.podCIDR}' 2>/dev/null) || subnet=""
		fi
		base=${CLUSTER_CIDR%/*}
		[[ -n $subnet ]] || subnet=${base%.*}.0/24
		write_if_changed "$CNI_REFERENCE_CONFLIST" <<-EOF || true
			{"cniVersion":"1.0.0","name":"$CNI_NETWORK","plugins":[
			 {"type":"bridge","bridge":"$CNI_BRIDGE","isGateway":true,"isDefaultGateway":true,"ipMasq":true,
			  "hairpinMode":true,"ipam":{"type":"host-local","subnet":"$subnet"}},
			 {"type":"portmap","capabilities":{"portMappings":true},"snat":true}]}
		EOF
		log "CNI: Debian's reference plugins (bridge + host-local + portmap) on $subnet"
		;;
	*) die "SKIFF_CNI must be 'skiff' or 'reference', not '$SKIFF_CNI'" ;;
	esac
}

# A development lab shares its disk with builds and test clones: like kind, it keeps the
# kubelet's memory and inode thresholds but trades the disk percentages (10 % / 15 % of a large
# disk) for absolute floors. SKIFF_EVICTION_HARD overrides (the kubelet's syntax).
EVICTION_HARD=${SKIFF_EVICTION_HARD:-memory.available<100Mi,nodefs.available<1Gi,nodefs.inodesFree<5%,imagefs.available<1Gi}
# Image GC works in percentages of that same shared disk: off in the lab, as kind does
# (imageGCHighThresholdPercent 100). SKIFF_IMAGE_GC_HIGH_THRESHOLD overrides (85 is the kubelet's).
IMAGE_GC_HIGH=${SKIFF_IMAGE_GC_HIGH_THRESHOLD:-100}

start_agent() {
	local pid
	if pid=$(lab_pid agent skiff-agent); then
		log "skiff-agent is running (pid $pid)"
		return 0
	fi
	ensure_port_free "$AGENT_PORT" "skiff-agent"
	write_agent_files
	start_daemon agent env RUST_LOG="${RUST_LOG:-info}" NO_COLOR=1 SKIFF_CNI_BIN_DIR="$CNI_BIN_DIRS" \
		"$BIN_DIR/skiff-agent" --kubeconfig "$NODE_KUBECONFIG" --node-name "$NODE_NAME" \
		--containerd-socket "$CONTAINERD_SOCK" --containerd-namespace "$CTR_NAMESPACE" \
		--root-dir "$AGENT_DIR" --run-dir "$RUN_DIR" --pod-log-dir "$POD_LOG_DIR" --storage-dir "$STORAGE_DIR" \
		--cni-conf-dir "$CNI_CONF_DIR" --cni-bin-dir "$CNI_BIN_DIRS" \
		--registry-config "$REGISTRIES_YAML" --containerd-root "$CONTAINERD_DIR/root" \
		--eviction-hard "$EVICTION_HARD" --image-gc-high-threshold "$IMAGE_GC_HIGH"
	log "skiff-agent started for node $NODE_NAME (pid $(<"$(pid_file agent)"))"
}

node_ready() {
	local status
	if command -v kubectl >/dev/null; then
		status=$(kubectl --kubeconfig "$ADMIN_KUBECONFIG" --cache-dir "$STATE/kube-cache" \
			get node "$NODE_NAME" \
			-o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) || return 1
		[[ $status == True ]]
	else
		node_ready_curl
	fi
}

# Without kubectl: read the Node with the admin client certificate. A NodeCondition
# has no nested objects, so one {...} holds both its type and its status.
node_ready_curl() {
	local dir rc=0
	dir=$(mktemp -d)
	kubeconfig_field client-certificate-data >"$dir/crt"
	kubeconfig_field client-key-data >"$dir/key"
	curl -ksf --max-time 3 --cert "$dir/crt" --key "$dir/key" \
		"https://127.0.0.1:$APISERVER_PORT/api/v1/nodes/$NODE_NAME" >"$dir/node" || rc=1
	rm -f "$dir/crt" "$dir/key"
	((rc == 0)) && tr -d '\n ' <"$dir/node" |
		grep -Eq '\{[^{}]*"type":"Ready"[^{}]*"status":"True"|"status":"True"[^{}]*"type":"Ready"' || rc=1
	rm -rf "$dir"
	return "$rc"
}

kubeconfig_field() {
	awk -v k="$1:" '$1 == k {print $2; exit}' "$ADMIN_KUBECONFIG" | base64 -d
}

wait_node_ready() {
	local deadline=$((SECONDS + READY_TIMEOUT))
	until node_ready; do
		if ! daemon_alive agent; then
			tail_log "$(log_file agent)" 30
			die "skiff-agent exited before node $NODE_NAME became Ready (log: $(log_file agent))"
		fi
		if ((SECONDS >= deadline)); then
			tail_log "$(log_file agent)" 30
			die "node $NODE_NAME is not Ready after ${READY_TIMEOUT}s (log: $(log_file agent))"
		fi
		sleep 1
	done
	log "node $NODE_NAME is Ready"
}

# A binary rebuilt since its process started is not restarted (a second run changes
# nothing), but the user is told.
warn_stale_binaries() {
	local name pid
	for name in apiserver agent; do
		pid=$(lab_pid "$name" "skiff-$name") || continue
		if [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == *" (deleted)" ]]; then
			log "note: skiff-$name was rebuilt after pid $pid started; run scripts/down.sh && scripts/up.sh to use the new binary"
		fi
	done
}

main() {
	[[ $# -eq 0 ]] || {
		sed -n '2,16s/^# \{0,1\}//p' "$0" >&2
		exit 2
	}
	require_root
	install_error_trap
	mkdir -p "$STATE" "$PIDS_DIR" "$LOGS_DIR"
	lock_state
	NODE_NAME=${SKIFF_NODE_NAME:-$(hostname | tr '[:upper:]' '[:lower:]')}
	[[ $NODE_NAME =~ ^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$ && ${#NODE_NAME} -le 253 ]] ||
		die "'$NODE_NAME' (from hostname) is not a valid node name; set SKIFF_NODE_NAME"

	step "packages"
	install_packages
	step "kernel features"
	check_kernel
	step "ports"
	check_ports
	step "build"
	build_binaries
	step "runtime directory"
	mount_run_dir
	step "containerd"
	start_containerd
	step "registry"
	start_registry
	step "offline images"
	ensure_images
	step "skiff-apiserver"
	start_apiserver
	step "skiff-agent"
	start_agent
	step "node ready"
	wait_node_ready
	warn_stale_binaries
	CURRENT_STEP=""
	log "lab is up (logs: $LOGS_DIR; stop it with scripts/down.sh)"
	printf 'export KUBECONFIG=%s\n' "$ADMIN_KUBECONFIG"
}

# Sourcing the file (tests) defines the functions without running anything.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then main "$@"; fi
