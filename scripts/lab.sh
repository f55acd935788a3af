#!/usr/bin/env bash
# A multi-machine skiff lab on one host: systemd-nspawn machines booted with systemd, each with
# its own IP on a lab bridge, provisioned only through systemd/install.sh (as a VM would be).
#
#   sudo scripts/lab.sh up [N]        N machines (default 3): lab-server (skiff-apiserver + its own
#                                     skiff-agent) and N-1 agents lab-agent1..; N nodes in all.
#                                     Last line: export KUBECONFIG=<absolute path>
#   sudo scripts/lab.sh down [--check]   remove machines, bridge, NAT, registry, state (keeps the
#                                     cached rootfs and registry data); --check: list leftovers
#   sudo scripts/lab.sh status        machines, registry, nodes
#   sudo scripts/lab.sh stop NAME | start NAME     power a machine off / boot it again
#   sudo scripts/lab.sh shell NAME [CMD...]        a command (default bash) inside a machine
#   sudo scripts/lab.sh manifest NAME              what uninstall.sh must leave as it was
#   sudo scripts/lab.sh join NAME                  install.sh agent in machine NAME again (after uninstall.sh)
#
# Layout: state $SKIFF_LAB_STATE (/var/lib/skiff-lab): machines/<name> (a copy of the cached
# Debian 12 rootfs /var/cache/skiff/nspawn/rootfs), bin/ (snapshot of the binaries, bound at
# /skiff-bin), shared/ (bound at /shared: token, node kubeconfigs), pids/, logs/ (consoles),
# admin.kubeconfig. Bridge skifflab0 10.213.1.1/24; lab-server 10.213.1.10, lab-agentK
# 10.213.1.(10+K). Machines reach the Debian mirror through a host NAT (nft table ip skiff-lab:
# only DNS and TCP 80/443 leave the bridge) and the images through a registry of their own on
# http://10.213.1.1:5001 (data /var/cache/skiff/lab-registry, seeded from the one-node lab's
# registry cache). Each machine runs in its own cgroup skiff-lab/<name> of every hierarchy.
# Join: `install.sh agent --server https://10.213.1.10:6443 --token T` once install.sh has
# --token; before that, a node kubeconfig from `install.sh node-kubeconfig` on the server.
# Environment: SKIFF_BIN_DIR (default target/release), SKIFF_LAB_STATE, SKIFF_LAB_REGISTRY_PORT.
set -Eeuo pipefail
LAB_STATE=${SKIFF_LAB_STATE:-/var/lib/skiff-lab}
# lib.sh's pid files, logs and registry helpers then point at the lab's state, never the host lab's
SKIFF_STATE=$LAB_STATE
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=nspawn-lib.sh
source "$SKIFF_REPO/scripts/nspawn-lib.sh"

LAB_BRIDGE=skifflab0
LAB_PREFIX=10.213.1
LAB_SUBNET=$LAB_PREFIX.0/24
LAB_HOST_IP=$LAB_PREFIX.1
LAB_CGROUP=skiff-lab
LAB_NFT=skiff-lab
LAB_REGISTRY_PORT=${SKIFF_LAB_REGISTRY_PORT:-5001}
LAB_REGISTRY_DIR=$CACHE_DIR/lab-registry
# lib.sh's registry_up / registry_has / start_daemon use these
REGISTRY=$LAB_HOST_IP:$LAB_REGISTRY_PORT
SEED_REGISTRY_DIR=$CACHE_DIR/registry
MACHINES_DIR=$LAB_STATE/machines
SHARED_DIR=$LAB_STATE/shared
LAB_BIN=$LAB_STATE/bin
LAB_KUBECONFIG=$LAB_STATE/admin.kubeconfig
MANIFEST_DIR=$LAB_STATE/manifests
LAB_ENV=$LAB_STATE/lab.env
SERVER_NAME=lab-server
SERVER_IP=$LAB_PREFIX.10
SERVER_URL=https://$SERVER_IP:6443
MACHINE_APISERVER_DATA=/var/lib/skiff/apiserver

usage() {
	sed -n '2,26s/^# \{0,1\}//p' "$0" >&2
	exit 2
}

# --- machines -----------------------------------------------------------------------------
machine_name() { if (($1 == 1)); then echo "$SERVER_NAME"; else echo "lab-agent$(($1 - 1))"; fi; }

machine_ip() {
	case $1 in
	"$SERVER_NAME") echo "$SERVER_IP" ;;
	lab-agent[0-9]*) echo "$LAB_PREFIX.$((10 + ${1#lab-agent}))" ;;
	*) return 1 ;;
	esac
}

# lab_machines: the machines of the lab that is up (from lab.env), one per line.
lab_machines() {
	local n=0 i
	[[ -f $LAB_ENV ]] && n=$(sed -n 's/^MACHINES=//p' "$LAB_ENV")
	for ((i = 1; i <= n; i++)); do machine_name "$i"; done
}

machine_pid_file() { printf '%s/%s.nspawn.pid\n' "$PIDS_DIR" "$1"; }
machine_console() { printf '%s/%s.console\n' "$LOGS_DIR" "$1"; }

# machine_pid NAME: systemd-nspawn's PID while machine NAME runs.
machine_pid() {
	local file pid
	file=$(machine_pid_file "$1")
	[[ -f $file ]] || return 1
	pid=$(<"$file")
	proc_matches "$pid" systemd-nspawn || return 1
	grep -qaF -- "$MACHINES_DIR/$1" "/proc/$pid/cmdline" || return 1
	nspawn_gone "$pid" && return 1
	printf '%s\n' "$pid"
}

# machine_leader NAME: the PID of the machine's systemd.
machine_leader() {
	local pid
	pid=$(machine_pid "$1") || return 1
	nspawn_leader "$pid"
}

leader_of() {
	local leader
	leader=$(machine_leader "$1") || die "machine $1 is not running (scripts/lab.sh start $1)"
	printf '%s\n' "$leader"
}

# in_machine NAME CMD...: run CMD inside machine NAME (all its namespaces).
in_machine() {
	local leader
	leader=$(leader_of "$1")
	shift
	nspawn_in "$leader" "$@"
}

# machine_image_network NAME DIR: the machine's hostname and static address on host0, set in its image
# (systemd-networkd, as a VM image or cloud-init would), so that it is up early in every boot:
# skiff-agent (Type=notify, READY=1 after registration) needs the server during boot.
machine_image_network() {
	local name=$1 dir=$2 ip
	ip=$(machine_ip "$name")
	mkdir -p "$dir/etc/systemd/network"
	cat >"$dir/etc/systemd/network/10-skiff-lab.network" <<-EOF
		# written by skiff scripts/lab.sh: machine $name on bridge $LAB_BRIDGE
		[Match]
		Name=host0

		[Network]
		Address=$ip/24
		Gateway=$LAB_HOST_IP
		LinkLocalAddressing=no
		IPv6AcceptRA=no
	EOF
	# debootstrap copied the host's name
	printf '%s\n' "$name" >"$dir/etc/hostname"
	systemctl --root="$dir" enable systemd-networkd.service >/dev/null 2>&1 ||
		die "cannot enable systemd-networkd in $dir"
}

# machine_network NAME LEADER: host0 address and the default route through the host (every boot;
# a no-op once systemd-networkd has set them).
machine_network() {
	local name=$1 leader=$2 ip
	ip=$(machine_ip "$name")
	nspawn_in "$leader" ip addr replace "$ip/24" dev host0
	nspawn_in "$leader" ip link set host0 up
	nspawn_in "$leader" ip route replace default via "$LAB_HOST_IP" dev host0
}

# boot_machine NAME: boot machine NAME unless it runs; its rootfs is created on first use.
boot_machine() {
	local name=$1 dir=$MACHINES_DIR/$1 pid t0=$EPOCHREALTIME
	if pid=$(machine_pid "$name"); then
		log "machine $name is running (nspawn pid $pid)"
		return 0
	fi
	if [[ ! -x $dir/lib/systemd/systemd ]]; then
		# a copy half removed by an interrupted `down` (or half made by an interrupted `up`): no
		# machine runs from it (machine_pid failed), so it goes, unless something is mounted under it
		if [[ -e $dir ]]; then
			if grep -qF " $dir" /proc/self/mountinfo; then
				die "machine $name: $dir is incomplete and has mounts under it (scripts/lab.sh down)"
			fi
			log "machine $name: removing the incomplete copy $dir"
			rm -rf "$dir"
		fi
		log "machine $name: copying the rootfs"
		rm -rf "$dir.tmp"
		mkdir -p "$MACHINES_DIR"
		cp -a --reflink=auto "$NSPAWN_ROOTFS" "$dir.tmp"
		machine_image_network "$name" "$dir.tmp"
		# -T: never into an existing $dir
		mv -T "$dir.tmp" "$dir"
	fi
	nspawn_cgroup_create "$LAB_CGROUP/$name"
	mkdir -p "$PIDS_DIR" "$LOGS_DIR" "$SHARED_DIR"
	printf '==== %s: boot\n' "$(date -u +%FT%TZ)" >>"$(machine_console "$name")"
	nspawn_start "$name" "$dir" "$LAB_BRIDGE" "$(machine_console "$name")" "$LAB_CGROUP/$name" \
		--resolv-conf=copy-host --bind-ro="$SKIFF_REPO:/skiff" --bind-ro="$LAB_BIN:/skiff-bin" \
		--bind="$SHARED_DIR:/shared"
	printf '%s\n' "$NSPAWN_PID" >"$(machine_pid_file "$name")"
	if ! nspawn_wait_booted "$NSPAWN_PID" 60; then
		tail_log "$(machine_console "$name")"
		die "machine $name did not boot within 60 s (console: $(machine_console "$name"))"
	fi
	nspawn_cgroups_rw "$NSPAWN_LEADER"
	machine_network "$name" "$NSPAWN_LEADER"
	log "machine $name booted in $(elapsed "$t0") s (nspawn pid $NSPAWN_PID, systemd pid $NSPAWN_LEADER, $(machine_ip "$name"))"
	if [[ ! -f $MANIFEST_DIR/$name.pristine ]]; then
		mkdir -p "$MANIFEST_DIR"
		machine_manifest "$name" >"$MANIFEST_DIR/$name.pristine.tmp"
		mv "$MANIFEST_DIR/$name.pristine.tmp" "$MANIFEST_DIR/$name.pristine"
	fi
}

stop_machine() {
	local name=$1 pid leader
	pid=$(machine_pid "$name") || return 0
	leader=$(nspawn_leader "$pid" || true)
	log "powering off machine $name (nspawn pid $pid)"
	nspawn_poweroff "$pid" "$leader" 10
	rm -f "$(machine_pid_file "$name")"
}

# machine_manifest NAME: packages, files and links that uninstall.sh must leave as they were
# (apt's lists and caches, logs and systemd's own state are left out).
machine_manifest() {
	# shellcheck disable=SC2016 # expanded by the shell inside the machine
	in_machine "$1" sh -c '
		dpkg-query -W -f "pkg \${Package} \${Version}\n" | sort
		find /etc /usr /opt /srv /var/lib /root -xdev \
			\( -path /var/lib/apt -o -path /var/lib/dpkg -o -path /var/lib/systemd -o -path /var/cache \
			-o -path /var/lib/ucf -o -path /etc/ld.so.cache -o -path /root/.cache \) -prune -o -print |
			sed "s/^/file /" | sort
		for l in /sys/class/net/*; do echo "link ${l##*/}"; done
		awk "{ print \"mount \" \$5 }" /proc/self/mountinfo | grep -v -e " /proc" -e " /sys" -e " /dev" | sort -u
	'
}

# elapsed START: seconds since START (an $EPOCHREALTIME), 2 decimals.
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }

# --- host network: bridge + NAT to the Debian mirror -----------------------------------------
setup_bridge() {
	if ! ip link show "$LAB_BRIDGE" >/dev/null 2>&1; then
		ip link add "$LAB_BRIDGE" type bridge
		log "created bridge $LAB_BRIDGE"
	fi
	ip addr replace "$LAB_HOST_IP/24" dev "$LAB_BRIDGE"
	ip link set "$LAB_BRIDGE" up
}

setup_nat() { nspawn_nat_setup "$LAB_NFT" "$LAB_BRIDGE" "$LAB_SUBNET"; }

# --- registry ----------------------------------------------------------------------------------
start_lab_registry() {
	local pid config=$STATE/registry/config.yml
	if pid=$(lab_pid registry docker-registry); then
		wait_until 30 registry_up || die "the lab registry (pid $pid) does not answer on http://$REGISTRY"
		log "lab registry is running (pid $pid, http://$REGISTRY)"
		return 0
	fi
	command -v docker-registry >/dev/null || die "docker-registry missing (apt-get install docker-registry)"
	ensure_port_free "$LAB_REGISTRY_PORT" "the lab registry"
	mkdir -p "$STATE/registry" "$LAB_REGISTRY_DIR"
	if [[ ! -d $LAB_REGISTRY_DIR/docker && -d $SEED_REGISTRY_DIR/docker ]]; then
		log "seeding $LAB_REGISTRY_DIR from $SEED_REGISTRY_DIR"
		cp -a "$SEED_REGISTRY_DIR/docker" "$LAB_REGISTRY_DIR/docker.tmp"
		mv "$LAB_REGISTRY_DIR/docker.tmp" "$LAB_REGISTRY_DIR/docker"
	fi
	write_if_changed "$config" <<-EOF || true
		# skiff multi-machine lab registry (written by scripts/lab.sh)
		version: 0.1
		log:
		  level: warn
		  accesslog:
		    disabled: true
		storage:
		  filesystem:
		    rootdirectory: $LAB_REGISTRY_DIR
		  delete:
		    enabled: true
		http:
		  addr: $REGISTRY
	EOF
	start_daemon registry docker-registry serve "$config"
	wait_until 30 registry_up || {
		tail_log "$(log_file registry)"
		die "the lab registry does not answer on http://$REGISTRY"
	}
	log "lab registry started on $REGISTRY (pid $(<"$(pid_file registry)"))"
}

check_images() {
	registry_has library/busybox 1.35 && registry_has library/busybox latest && registry_has library/nginx latest && return 0
	die "the lab registry has no offline images: run scripts/up.sh once (it builds them into $SEED_REGISTRY_DIR), then scripts/lab.sh down && scripts/lab.sh up"
}

# --- binaries ------------------------------------------------------------------------------------
snapshot_binaries() {
	local bin
	mkdir -p "$LAB_BIN"
	for bin in skiff-apiserver skiff-agent skiff-cni; do
		[[ -x $BIN_DIR/$bin ]] || die "$BIN_DIR/$bin is missing: nice cargo build --release -p skiff-apiserver -p skiff-agent -p skiff-cni (or SKIFF_BIN_DIR=DIR)"
		if ! cmp -s "$BIN_DIR/$bin" "$LAB_BIN/$bin"; then
			install -m 755 "$BIN_DIR/$bin" "$LAB_BIN/$bin.new"
			mv -f "$LAB_BIN/$bin.new" "$LAB_BIN/$bin"
			log "binary $bin taken from $BIN_DIR"
		fi
	done
}

# --- provisioning: systemd/install.sh only ---------------------------------------------------------
token_join() { grep -q -- '--token)' "$SKIFF_REPO/systemd/install.sh"; }

# installer NAME ARGS...: systemd/install.sh inside machine NAME; its output goes to the machine's log.
installer() {
	local name=$1 log=$LOGS_DIR/$1.install.log out rc=0
	shift
	out=$(in_machine "$name" /skiff/systemd/install.sh "$@" 2>&1) || rc=$?
	printf '==== %s: install.sh %s\n%s\n' "$(date -u +%FT%TZ)" "$*" "$out" >>"$log"
	if ((rc != 0)); then
		tail_log "$log" 30
		die "install.sh $1 failed in machine $name (log: $log)"
	fi
	if grep -q 'nothing changed' <<<"$out"; then
		log "$name: install.sh $1: nothing changed"
	else
		log "$name: install.sh $1: done"
	fi
}

# The machines share the host's disk with builds and test clones: like kind, the lab keeps the
# kubelet's memory and inode thresholds but trades its disk percentages for absolute floors.
LAB_EVICTION_HARD=${SKIFF_LAB_EVICTION_HARD:-memory.available<100Mi,nodefs.available<1Gi,nodefs.inodesFree<5%,imagefs.available<1Gi}
# Image GC (percentages of the same disk) is off, as in kind.
LAB_IMAGE_GC_HIGH=${SKIFF_LAB_IMAGE_GC_HIGH_THRESHOLD:-100}

provision_server() {
	local leader
	installer "$SERVER_NAME" server --bin-dir /skiff-bin --advertise-address "$SERVER_IP" \
		--node-ip "$SERVER_IP" --node-name "$SERVER_NAME" --registry-mirror "http://$REGISTRY" \
		--eviction-hard "$LAB_EVICTION_HARD" --image-gc-high-threshold "$LAB_IMAGE_GC_HIGH"
	leader=$(leader_of "$SERVER_NAME")
	install -m 600 "/proc/$leader/root$MACHINE_APISERVER_DATA/admin.kubeconfig" "$LAB_KUBECONFIG.new"
	mv -f "$LAB_KUBECONFIG.new" "$LAB_KUBECONFIG"
}

# join_token: the join token install.sh server keeps valid in the server's /etc/skiff/join-token
# (copied to shared/token); `skiff-apiserver token create` on the server if there is none.
join_token() {
	local file=$SHARED_DIR/token leader token=""
	leader=$(leader_of "$SERVER_NAME")
	[[ -s /proc/$leader/root/etc/skiff/join-token ]] && token=$(<"/proc/$leader/root/etc/skiff/join-token")
	if [[ -z $token ]]; then
		token=$(in_machine "$SERVER_NAME" skiff-apiserver token create --data-dir "$MACHINE_APISERVER_DATA" \
			--description "scripts/lab.sh" 2>>"$LOGS_DIR/$SERVER_NAME.install.log" | grep -E '^K10' | tail -n 1) ||
			die "skiff-apiserver token create failed on $SERVER_NAME (log: $LOGS_DIR/$SERVER_NAME.install.log)"
	fi
	printf '%s\n' "$token" | write_if_changed "$file" && chmod 600 "$file"
	printf '%s\n' "$token"
}

provision_agent() {
	local name=$1 ip
	ip=$(machine_ip "$name")
	local -a common=(--bin-dir /skiff-bin --node-ip "$ip" --node-name "$name" --registry-mirror "http://$REGISTRY"
		--eviction-hard "$LAB_EVICTION_HARD" --image-gc-high-threshold "$LAB_IMAGE_GC_HIGH")
	if token_join; then
		installer "$name" agent --server "$SERVER_URL" --token "$(join_token)" "${common[@]}"
	else
		if [[ ! -s $SHARED_DIR/$name.kubeconfig ]]; then
			in_machine "$SERVER_NAME" /skiff/systemd/install.sh node-kubeconfig "$name" "/shared/$name.kubeconfig" \
				>>"$LOGS_DIR/$SERVER_NAME.install.log" 2>&1 || die "install.sh node-kubeconfig $name failed"
		fi
		installer "$name" agent --server "$SERVER_URL" --kubeconfig "/shared/$name.kubeconfig" "${common[@]}"
	fi
}

# --- nodes -----------------------------------------------------------------------------------------
lab_kubectl() { kubectl --kubeconfig "$LAB_KUBECONFIG" --cache-dir "$LAB_STATE/kube-cache" "$@"; }

node_ready() {
	[[ $(lab_kubectl get node "$1" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}

# --- commands ------------------------------------------------------------------------------------
cmd_up() {
	local n=${1:-3} have name i tool
	if ! [[ $n =~ ^[1-9]$ ]]; then die "N must be 1..9 (machines: 1 server + N-1 agents)"; fi
	for tool in systemd-nspawn nsenter nft kubectl curl; do
		command -v "$tool" >/dev/null || die "$tool is missing"
	done
	mkdir -p "$LAB_STATE"
	lock_state
	if [[ -f $LAB_ENV ]]; then
		have=$(sed -n 's/^MACHINES=//p' "$LAB_ENV")
		[[ $have == "$n" ]] || die "the lab is up with $have machine(s); run scripts/lab.sh down first"
	fi
	step "rootfs"
	nspawn_build_rootfs
	step "binaries"
	snapshot_binaries
	step "network"
	setup_bridge
	setup_nat
	step "registry"
	start_lab_registry
	check_images
	printf 'MACHINES=%s\n' "$n" | write_if_changed "$LAB_ENV" || true
	step "machines"
	for ((i = 1; i <= n; i++)); do boot_machine "$(machine_name "$i")"; done
	step "server"
	provision_server
	for ((i = 2; i <= n; i++)); do
		name=$(machine_name "$i")
		step "agent $name"
		provision_agent "$name"
	done
	step "nodes Ready"
	for ((i = 1; i <= n; i++)); do
		name=$(machine_name "$i")
		wait_until 60 node_ready "$name" || die "node $name is not Ready after 60 s (scripts/lab.sh shell $name journalctl -u skiff-agent)"
	done
	CURRENT_STEP=""
	log "lab is up: $n node(s) Ready"
	lab_kubectl get nodes -o wide >&2 || true
	printf 'export KUBECONFIG=%s\n' "$LAB_KUBECONFIG"
}

cmd_start() {
	local name=$1
	grep -qxF "$name" < <(lab_machines) || die "no machine $name in the lab (scripts/lab.sh status)"
	lock_state
	setup_bridge
	boot_machine "$name"
}

cmd_stop() {
	local name=$1
	grep -qxF "$name" < <(lab_machines) || die "no machine $name in the lab (scripts/lab.sh status)"
	lock_state
	stop_machine "$name"
}

cmd_status() {
	local name pid state
	if [[ ! -f $LAB_ENV ]]; then
		echo "lab: down"
		return 0
	fi
	echo "lab: $(lab_machines | wc -l) machine(s), bridge $LAB_BRIDGE, registry http://$REGISTRY, kubeconfig $LAB_KUBECONFIG"
	while read -r name; do
		state=stopped
		pid=$(machine_pid "$name") && state="running (nspawn pid $pid, systemd $(machine_leader "$name" || echo ?))"
		printf '  %-12s %-13s %s\n' "$name" "$(machine_ip "$name")" "$state"
	done < <(lab_machines)
	lab_kubectl get nodes -o wide 2>&1 | sed 's/^/  /'
}

# leftovers: what the lab left on the host (empty when down removed everything).
leftovers() {
	local name pid
	ip link show "$LAB_BRIDGE" >/dev/null 2>&1 && echo "bridge $LAB_BRIDGE"
	nft list table ip "$LAB_NFT" >/dev/null 2>&1 && echo "nft table ip $LAB_NFT"
	while read -r name; do echo "veth $name"; done < <(ip -o link show 2>/dev/null | awk -F': ' '$2 ~ /^vb-lab-/ { print $2 }')
	while read -r name; do echo "cgroup $name"; done < <(nspawn_hierarchies | while read -r r; do [[ -d $r/$LAB_CGROUP ]] && echo "$r/$LAB_CGROUP"; done)
	for pid in $(pgrep -f "systemd-nspawn .*-D $MACHINES_DIR/" 2>/dev/null); do echo "process $pid (systemd-nspawn)"; done
	for pid in $(pgrep -f "$(lab_signature registry)" 2>/dev/null); do echo "process $pid (lab registry)"; done
	grep -F " $LAB_STATE" /proc/self/mountinfo | awk '{ print "mount " $5 }'
	[[ -e $LAB_STATE ]] && echo "directory $LAB_STATE"
	return 0
}

cmd_down() {
	local name pid left
	if [[ ${1:-} == --check ]]; then
		left=$(leftovers)
		[[ -z $left ]] && {
			log "nothing of the lab is left"
			return 0
		}
		printf '%s\n' "$left" >&2
		return 1
	fi
	[[ -d $LAB_STATE ]] && lock_state
	step "machines"
	for name in $(lab_machines); do
		pid=$(machine_pid "$name") || continue
		nspawn_in "$(nspawn_leader "$pid" || echo 0)" systemctl poweroff >/dev/null 2>&1 || true
	done
	for name in $(lab_machines); do stop_machine "$name"; done
	# machines of an interrupted `up` (no lab.env yet)
	for pid in $(pgrep -f "systemd-nspawn .*-D $MACHINES_DIR/" 2>/dev/null); do
		nspawn_poweroff "$pid" "$(nspawn_leader "$pid" || true)" 30
	done
	step "registry"
	stop_daemons 10 registry:docker-registry
	step "cgroups"
	nspawn_cgroup_remove "$LAB_CGROUP" || log "some cgroups under $LAB_CGROUP are still busy"
	step "network"
	ip link del "$LAB_BRIDGE" 2>/dev/null || true
	nspawn_nat_remove "$LAB_NFT"
	step "state"
	rm -rf "$LAB_STATE"
	CURRENT_STEP=""
	left=$(leftovers)
	if [[ -n $left ]]; then
		printf '%s\n' "$left" >&2
		die "the lab is not completely removed"
	fi
	log "lab is down (the cached rootfs $NSPAWN_ROOTFS and $LAB_REGISTRY_DIR stay)"
}

main() {
	[[ $# -ge 1 ]] || usage
	local cmd=$1
	shift
	require_root
	install_error_trap
	case $cmd in
	up) (($# <= 1)) || usage; cmd_up "$@" ;;
	down) cmd_down "$@" ;;
	status) cmd_status ;;
	start) (($# == 1)) || usage; cmd_start "$1" ;;
	stop) (($# == 1)) || usage; cmd_stop "$1" ;;
	shell)
		(($# >= 1)) || usage
		local name=$1 leader
		shift
		(($#)) || set -- bash
		leader=$(leader_of "$name")
		# the command's exit status is lab.sh's (no error report of its own)
		exec nsenter -t "$leader" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM="${TERM:-dumb}" "$@"
		;;
	manifest) (($# == 1)) || usage; machine_manifest "$1" ;;
	join)
		(($# == 1)) || usage
		if [[ $1 == "$SERVER_NAME" ]] || ! grep -qxF "$1" < <(lab_machines); then die "no agent machine $1 in the lab"; fi
		provision_agent "$1"
		;;
	-h | --help) usage ;;
	*) usage ;;
	esac
}

main "$@"
