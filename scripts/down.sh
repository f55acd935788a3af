#!/usr/bin/env bash
# Stop the one-host skiff lab and remove everything it left on the host.
#
#   sudo ./scripts/down.sh           stop and clean up; exit 1 if something is still left
#   sudo ./scripts/down.sh --check   only list what skiff left behind; exit 1 if anything
#
# Order: skiff-agent (SIGTERM, wait) -> every task/container/snapshot of containerd
# namespace skiff (ctr) -> containerd, skiff-apiserver, registry (by pid file or lab
# command line; SIGTERM, SIGKILL after 20 s) -> stray shims of the lab containerd ->
# mounts under $STATE and /run/skiff (rootfs, pinned pod namespaces) -> veths on
# skiff0, skiff0, nft tables `ip skiff-cni`, `ip skiff-proxy` and `inet skiff-netpol`, iptables rules naming skiff, IPAM dir and
# CNI result files -> cgroups /sys/fs/cgroup/*/skiff (deepest first) -> pod logs ->
# runc state of the lab's containers, /run/skiff, $STATE.
# Kept: the image cache /var/cache/skiff (registry storage and downloaded .debs).
# Things of another containerd on this host (a second node, a test) are left alone.
# Running it again is harmless: "nothing to do", exit 0.
set -Eeuo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# cgroup roots: the agent's (/skiff/pod<uid>/<container>) and ctr's default
# (/<namespace>/<container>) for the self test of build-images.sh, and bench_floor's.
CGROUP_NAMES=(skiff "$SELFTEST_NAMESPACE" "$FLOOR_NAMESPACE")
SELFTEST_NETNS=skiff-selftest
# CNI results written straight into /var/lib/cni (an agent whose cache dir lacks
# the libcni "results" level); cleaned as well.
CNI_LEGACY_RESULTS=/var/lib/cni/$CNI_NETWORK
# runc's state root as the runc v2 shim uses it (one directory per namespace).
RUNC_ROOT=/run/containerd/runc
# The agent's NetworkPolicy enforcement (family inet); see agent/src/netpol.
NETPOL_NFT_TABLE=skiff-netpol

# --- what skiff leaves behind ------------------------------------------------------------
# A kubelet on the same host shares /var/log/pods; without one, all of it is skiff's.
pod_logs_are_ours() { [[ ! -d /var/lib/kubelet ]]; }

# lab_mounts: mount points under $STATE and $RUN_DIR, deepest first.
lab_mounts() {
	awk -v s="$STATE/" -v r="$RUN_DIR/" '
		{ t = $5; if (index(t "/", s) == 1 || index(t "/", r) == 1) print length(t), t }' \
		/proc/self/mountinfo | sort -rn | cut -d' ' -f2- | uniq
}

# shim_address PID: the containerd address served by the shim PID runs under
# ("" when there is none).
shim_address() {
	local pid=$1 args stat
	while [[ $pid =~ ^[0-9]+$ ]] && ((pid > 1)); do
		args=$({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null) || return 0
		if [[ $args == *containerd-shim* ]]; then
			if [[ $args =~ -address\ ([^ ]+) ]]; then printf '%s\n' "${BASH_REMATCH[1]}"; fi
			return 0
		fi
		stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 0
		stat=${stat##*) }
		pid=${stat#* }
		pid=${pid%% *}
	done
	return 0
}

# foreign PID: PID belongs to another containerd (another skiff node or a test on
# this host, which shares the agent's cgroup root /skiff and runc's state directory).
foreign() {
	local address
	address=$(shim_address "$1")
	[[ -n $address && $address != "$CONTAINERD_SOCK" ]]
}

# subtree_pids DIR: live processes in a cgroup directory and below.
subtree_pids() {
	local pid
	for pid in $(find "$1" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -un); do
		not_zombie "$pid" && printf '%s\n' "$pid"
	done
	return 0
}

# skiff_cgroups: the lab's cgroup roots in every hierarchy (v1 and v2); a root that
# holds another containerd's processes is shared, not the lab's to report or remove.
skiff_cgroups() {
	local name root pid
	for name in "${CGROUP_NAMES[@]}"; do
		while read -r root; do
			[[ -n $root ]] || continue
			for pid in $(subtree_pids "$root"); do
				foreign "$pid" && continue 2
			done
			printf '%s\n' "$root"
		done < <(find /sys/fs/cgroup -mindepth 1 -maxdepth 2 -type d -name "$name" 2>/dev/null)
	done
	return 0
}

# cgroup_pids: the lab's processes still inside the skiff cgroups.
cgroup_pids() {
	local name root pid
	for name in "${CGROUP_NAMES[@]}"; do
		while read -r root; do
			[[ -n $root ]] && subtree_pids "$root"
		done < <(find /sys/fs/cgroup -mindepth 1 -maxdepth 2 -type d -name "$name" 2>/dev/null)
	done | sort -un | while read -r pid; do
		foreign "$pid" || printf '%s\n' "$pid"
	done
	return 0
}

# runc_leftovers: runc state of containers in the lab's namespace, except those of a
# live container of another containerd.
runc_leftovers() {
	local entry pid
	[[ -e $RUNC_ROOT/$SELFTEST_NAMESPACE ]] && printf '%s\n' "$RUNC_ROOT/$SELFTEST_NAMESPACE"
	for entry in "$RUNC_ROOT/$CTR_NAMESPACE"/*; do
		[[ -e $entry ]] || continue
		pid=$(grep -o '"init_process_pid":[0-9]*' "$entry/state.json" 2>/dev/null | cut -d: -f2)
		if [[ -n $pid ]] && not_zombie "$pid" && foreign "$pid"; then continue; fi
		printf '%s\n' "$entry"
	done
	return 0
}

# shim_pids: containerd shims serving the lab containerd (argv has its socket).
shim_pids() {
	local pid
	for pid in $(pgrep -f "containerd-shim.* -address $CONTAINERD_SOCK" 2>/dev/null || true); do
		not_zombie "$pid" && printf '%s\n' "$pid"
	done
	return 0
}

bridge_veths() {
	ip -o link show master "$CNI_BRIDGE" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 || true
}

skiff_iptables_rules() {
	local cmd
	for cmd in iptables-save ip6tables-save; do
		command -v "$cmd" >/dev/null || continue
		"$cmd" 2>/dev/null | grep -iE '^-A .*skiff|^:SKIFF' | sed "s/^/$cmd: /" || true
	done
}

# lo_addresses: skiff's addresses (CIDR form) on the loopback interface: the agent's cluster DNS address
# and the lab API server's in-cluster address.
lo_addresses() {
	local label
	for label in "$DNS_ADDRESS_LABEL" "$API_ADDRESS_LABEL"; do
		ip -4 -o addr show dev lo label "$label" 2>/dev/null | awk -v l="$label" '{print $4, l}'
	done
	return 0
}

# list_leftovers: one line per thing skiff left behind (nothing when clean).
list_leftovers() {
	local name pid entry
	for name in agent:skiff-agent containerd:containerd apiserver:skiff-apiserver registry:docker-registry; do
		for pid in $(lab_pids "${name%%:*}" "${name#*:}"); do echo "process: ${name%%:*} (pid $pid)"; done
	done
	for pid in $(shim_pids); do echo "process: containerd shim (pid $pid)"; done
	for pid in $(cgroup_pids); do echo "process: pid $pid in a skiff cgroup"; done
	while read -r entry; do [[ -n $entry ]] && echo "mount: $entry"; done < <(lab_mounts)
	[[ -e /run/netns/$SELFTEST_NETNS ]] && echo "netns: /run/netns/$SELFTEST_NETNS"
	ip link show "$CNI_BRIDGE" >/dev/null 2>&1 && echo "link: $CNI_BRIDGE"
	ip link show "$VXLAN_DEVICE" >/dev/null 2>&1 && echo "link: $VXLAN_DEVICE"
	lo_addresses | sed -E 's/^([^ ]+) (.*)$/address: \1 on lo (\2)/'
	ip route show proto 83 2>/dev/null | sed 's/^/route (host-gw): /'
	ip route show proto 84 2>/dev/null | sed 's/^/route (vxlan): /'
	while read -r entry; do [[ -n $entry ]] && echo "link: $entry (on $CNI_BRIDGE)"; done < <(bridge_veths)
	nft list table ip "$CNI_NFT_TABLE" >/dev/null 2>&1 && echo "nftables: table ip $CNI_NFT_TABLE"
	nft list table ip "$PROXY_NFT_TABLE" >/dev/null 2>&1 && echo "nftables: table ip $PROXY_NFT_TABLE"
	nft list table inet "$NETPOL_NFT_TABLE" >/dev/null 2>&1 && echo "nftables: table inet $NETPOL_NFT_TABLE"
	while read -r entry; do [[ -n $entry ]] && echo "iptables: $entry"; done < <(skiff_iptables_rules)
	for entry in "$CNI_IPAM_DIR" "$CNI_RESULTS_DIR/$CNI_NETWORK"-* "$CNI_LEGACY_RESULTS"-* "$RUN_DIR" "$STATE"; do
		[[ -e $entry ]] && echo "file: $entry"
	done
	while read -r entry; do [[ -n $entry ]] && echo "file: $entry"; done < <(runc_leftovers)
	while read -r entry; do [[ -n $entry ]] && echo "file: $entry"; done < <(container_log_links)
	while read -r entry; do [[ -n $entry ]] && echo "cgroup: $entry"; done < <(skiff_cgroups)
	if pod_logs_are_ours && [[ -d $POD_LOG_DIR ]]; then
		for entry in "$POD_LOG_DIR"/*; do [[ -e $entry ]] && echo "pod log: $entry"; done
	fi
	return 0
}

# --- stopping ---------------------------------------------------------------------------
# pod_uids: pod UIDs skiff knows (container ids start with the UID; pinned namespaces).
pod_uids() {
	{
		if containerd_up; then
			lab_ctr -n "$CTR_NAMESPACE" containers ls -q 2>/dev/null | grep -oE '^[0-9a-f-]{36}' || true
		fi
		if [[ -d $RUN_DIR/pods ]]; then ls -1 "$RUN_DIR/pods"; fi
	} | sort -u
}

# remove_containers NAMESPACE: kill and delete every task, container and snapshot.
remove_containers() {
	local ns=$1 id
	containerd_up || return 0
	for id in $(lab_ctr -n "$ns" tasks ls -q 2>/dev/null); do
		lab_ctr -n "$ns" tasks kill -a -s SIGKILL "$id" >/dev/null 2>&1 || true
	done
	for id in $(lab_ctr -n "$ns" tasks ls -q 2>/dev/null); do
		wait_until 10 task_not_running "$ns" "$id" || log "task $ns/$id still running"
		lab_ctr -n "$ns" tasks rm -f "$id" >/dev/null 2>&1 || log "cannot delete task $ns/$id"
	done
	for id in $(lab_ctr -n "$ns" containers ls -q 2>/dev/null); do
		lab_ctr -n "$ns" containers rm "$id" >/dev/null 2>&1 || log "cannot delete container $ns/$id"
	done
	for id in $(lab_ctr -n "$ns" snapshots ls 2>/dev/null | awk 'NR > 1 && $3 == "Active" {print $1}'); do
		lab_ctr -n "$ns" snapshots rm "$id" >/dev/null 2>&1 || true
	done
}

task_not_running() {
	[[ $(lab_ctr -n "$1" tasks ls 2>/dev/null | awk -v id="$2" '$1 == id {print $3}') != RUNNING ]]
}

# kill_strays: shims of the lab containerd, and, when the lab containerd was not
# reachable (crashed), the processes left in the lab cgroups it had created.
kill_strays() {
	local pid containerd_was_up=$1
	local -a pids
	mapfile -t pids < <(shim_pids)
	((containerd_was_up)) || mapfile -t -O "${#pids[@]}" pids < <(cgroup_pids)
	for pid in "${pids[@]}"; do
		log "killing stray pid $pid ($({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | cut -c1-80))"
		kill -KILL "$pid" 2>/dev/null || true
	done
	((${#pids[@]} == 0)) || wait_until 5 no_shims || true
}

no_shims() { [[ -z $(shim_pids) ]]; }

# --- cleaning -----------------------------------------------------------------------------
unmount_all() {
	local target
	while read -r target; do
		[[ -n $target ]] || continue
		umount "$target" 2>/dev/null || umount -l "$target" 2>/dev/null ||
			log "cannot unmount $target"
	done < <(lab_mounts)
}

remove_network() {
	local veth table addr
	ip netns del "$SELFTEST_NETNS" 2>/dev/null || true
	while read -r veth; do
		[[ -n $veth ]] || continue
		# A veth disappears by itself once its peer's namespace is gone.
		ip link del "$veth" 2>/dev/null || ! ip link show "$veth" >/dev/null 2>&1 ||
			log "cannot delete link $veth"
	done < <(bridge_veths)
	if ip link show "$CNI_BRIDGE" >/dev/null 2>&1; then
		ip link del "$CNI_BRIDGE" || log "cannot delete bridge $CNI_BRIDGE"
	fi
	# The agent's routes to other nodes' pod CIDRs (host-gw: protocol 83, VXLAN: 84) and its
	# VXLAN device; a one-node lab has none of them.
	ip route flush proto 83 2>/dev/null || true
	ip route flush proto 84 2>/dev/null || true
	if ip link show "$VXLAN_DEVICE" >/dev/null 2>&1; then
		ip link del "$VXLAN_DEVICE" || log "cannot delete link $VXLAN_DEVICE"
	fi
	# The cluster DNS address the agent serves on, the API server's in-cluster address.
	while read -r addr _; do
		[[ -n $addr ]] || continue
		ip addr del "$addr" dev lo || log "cannot delete address $addr from lo"
	done < <(lo_addresses)
	for table in "$CNI_NFT_TABLE" "$PROXY_NFT_TABLE"; do
		if nft list table ip "$table" >/dev/null 2>&1; then
			nft delete table ip "$table" || log "cannot delete nft table ip $table"
		fi
	done
	if nft list table inet "$NETPOL_NFT_TABLE" >/dev/null 2>&1; then
		nft delete table inet "$NETPOL_NFT_TABLE" || log "cannot delete nft table inet $NETPOL_NFT_TABLE"
	fi
	remove_iptables_rules
	rm -rf "$CNI_IPAM_DIR" "$CNI_RESULTS_DIR/$CNI_NETWORK"-* "$CNI_LEGACY_RESULTS"-*
	rmdir "$CNI_RESULTS_DIR" /var/lib/cni/networks /var/lib/cni 2>/dev/null || true
}

# skiff-cni keeps its rules in nftables; this only catches iptables rules that name
# skiff (comments or SKIFF-* chains), should a plugin version add some.
remove_iptables_rules() {
	local line tool table rule chain
	while read -r line; do
		[[ -n $line ]] || continue
		tool=${line%%-save:*} line=${line#*: }
		[[ $line == -A* ]] || continue
		for table in filter nat mangle raw; do
			rule=${line#-A }
			# shellcheck disable=SC2086 # the saved rule is a word list
			"$tool" -t "$table" -D $rule 2>/dev/null && break
		done
	done < <(skiff_iptables_rules)
	for tool in iptables ip6tables; do
		command -v "$tool" >/dev/null || continue
		for table in filter nat mangle raw; do
			for chain in $("$tool-save" -t "$table" 2>/dev/null | awk -F'[: ]' '/^:SKIFF/ {print $2}'); do
				"$tool" -t "$table" -F "$chain" 2>/dev/null || true
				"$tool" -t "$table" -X "$chain" 2>/dev/null || true
			done
		done
	done
}

remove_cgroups() {
	local root
	while read -r root; do
		[[ -n $root ]] || continue
		find "$root" -depth -type d -exec rmdir {} \; 2>/dev/null || log "cannot remove cgroup $root"
	done < <(skiff_cgroups)
}

# container_log_links: the agent's /var/log/containers symlinks that point into the pod log dir.
container_log_links() {
	local link
	[[ -d $CONTAINER_LOG_DIR ]] || return 0
	for link in "$CONTAINER_LOG_DIR"/*.log; do
		[[ -L $link ]] || continue
		[[ $(readlink "$link") == "$POD_LOG_DIR"/* ]] && echo "$link"
	done
}

# remove_pod_logs UID...: the pod log dirs of the given pods, or all of /var/log/pods
# when no kubelet shares it.
remove_pod_logs() {
	local uid link
	while read -r link; do [[ -n $link ]] && rm -f "$link"; done < <(container_log_links)
	rmdir "$CONTAINER_LOG_DIR" 2>/dev/null || true
	[[ -d $POD_LOG_DIR ]] || return 0
	if pod_logs_are_ours; then
		rm -rf "${POD_LOG_DIR:?}"/*
	else
		for uid in "$@"; do rm -rf "$POD_LOG_DIR"/*_"$uid"; done
	fi
	rmdir "$POD_LOG_DIR" 2>/dev/null || true
}

# remove_runc_state UID...: runc's state of the lab's containers (left when containerd
# could not delete the tasks). /run/containerd/runc/<namespace> is shared by every
# containerd on the host, so only entries of known pods go, and the directory only
# when empty.
remove_runc_state() {
	local uid
	rm -rf "${RUNC_ROOT:?}/$SELFTEST_NAMESPACE" "${RUNC_ROOT:?}/$FLOOR_NAMESPACE"
	for uid in "$@"; do rm -rf "$RUNC_ROOT/$CTR_NAMESPACE/$uid"-*; done
	rmdir "$RUNC_ROOT/$CTR_NAMESPACE" 2>/dev/null || true
}

remove_files() {
	remove_runc_state "$@"
	rm -rf "$RUN_DIR"
	# The image cache lives outside $STATE ($CACHE_DIR), so all of $STATE goes.
	rm -rf "$STATE"
}

down() {
	local -a uids
	local leftovers containerd_was_up=0
	leftovers=$(list_leftovers)
	if [[ -z $leftovers ]]; then
		log "nothing to do: no skiff lab on this host"
		return 0
	fi
	mapfile -t uids < <(pod_uids)
	containerd_up && containerd_was_up=1
	step "stop skiff-agent"
	stop_daemons 20 agent:skiff-agent
	step "remove containers (namespace $CTR_NAMESPACE)"
	remove_containers "$CTR_NAMESPACE"
	remove_containers "$SELFTEST_NAMESPACE"
	step "stop containerd, skiff-apiserver, registry"
	stop_daemons 20 containerd:containerd apiserver:skiff-apiserver registry:docker-registry
	kill_strays "$containerd_was_up"
	step "unmount"
	unmount_all
	step "network"
	remove_network
	step "cgroups"
	remove_cgroups
	step "files"
	remove_pod_logs "${uids[@]}"
	remove_files "${uids[@]}"
	CURRENT_STEP=""
	leftovers=$(list_leftovers)
	if [[ -n $leftovers ]]; then
		log "could not remove everything:"
		printf '%s\n' "$leftovers" | sed 's/^/    /' >&2
		exit 1
	fi
	log "lab stopped; nothing left (kept the image cache $CACHE_DIR)"
}

main() {
	require_root
	install_error_trap
	case ${1:-} in
	"")
		lock_state
		down
		;;
	--check)
		local leftovers
		leftovers=$(list_leftovers)
		[[ -z $leftovers ]] && return 0
		printf '%s\n' "$leftovers"
		exit 1
		;;
	*)
		sed -n '2,16s/^# \{0,1\}//p' "$0" >&2
		exit 2
		;;
	esac
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then main "$@"; fi
