#!/usr/bin/env bash
# Remove what systemd/install.sh installed and everything skiff created at run time.
#
#   sudo systemd/uninstall.sh
#
# Order: stop and disable skiff-agent and skiff-apiserver -> every task, container, snapshot
# and image of containerd namespace skiff (system containerd) -> mounts under /var/lib/skiff
# and /run/skiff -> skiff0, its veths, skiff.vxlan, the cluster DNS address on lo, nft tables `ip skiff-cni`, `ip skiff-proxy` and `inet skiff-netpol`, IPAM and CNI result files ->
# cgroups named skiff -> pod logs -> unit files, binaries, /opt/cni/bin/skiff-cni, the
# containerd config install.sh wrote, the packages install.sh installed (listed in
# /etc/skiff/installed), /etc/skiff, /var/lib/skiff, /run/skiff.
# The run-time cleanup is scripts/down.sh's, pointed at the system containerd.
# Running it again is harmless.
set -Eeuo pipefail
SKIFF_SYSTEMD_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../scripts/down.sh
source "$SKIFF_SYSTEMD_DIR/../scripts/down.sh"
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$SKIFF_SYSTEMD_DIR/common.sh"

# down.sh's helpers act on the containerd the units use.
CONTAINERD_SOCK=$SYSTEM_CONTAINERD_SOCK

# A cgroup hierarchy mounted read-only (a container's view of its host's, e.g. under
# systemd-nspawn) holds nothing this machine created: down.sh's list of skiff cgroups skips it.
eval "down_skiff_cgroups() $(declare -f skiff_cgroups | tail -n +2)"
skiff_cgroups() {
	local root
	while read -r root; do
		[[ -n $root && -w $root ]] && printf '%s\n' "$root"
	done < <(down_skiff_cgroups)
	return 0
}

stop_units() {
	local unit
	[[ -d /run/systemd/system ]] || return 0
	for unit in "${SKIFF_UNITS[@]}"; do
		if systemctl list-unit-files "$unit" >/dev/null 2>&1; then
			systemctl disable --now "$unit" >/dev/null 2>&1 || true
		fi
		systemctl reset-failed "$unit" >/dev/null 2>&1 || true
	done
}

# remove_images: images of namespace skiff and the namespace itself (containerd's GC
# removes the content once no image references it).
remove_images() {
	local ref
	containerd_up || return 0
	for ref in $(lab_ctr -n "$CTR_NAMESPACE" images ls -q 2>/dev/null); do
		lab_ctr -n "$CTR_NAMESPACE" images rm --sync "$ref" >/dev/null 2>&1 || true
	done
	for ref in $(lab_ctr -n "$CTR_NAMESPACE" leases ls -q 2>/dev/null); do
		lab_ctr -n "$CTR_NAMESPACE" leases rm "$ref" >/dev/null 2>&1 || true
	done
	for ref in $(lab_ctr -n "$CTR_NAMESPACE" content ls -q 2>/dev/null); do
		lab_ctr -n "$CTR_NAMESPACE" content rm "$ref" >/dev/null 2>&1 || true
	done
	lab_ctr namespaces rm "$CTR_NAMESPACE" >/dev/null 2>&1 || log "cannot remove containerd namespace $CTR_NAMESPACE"
}

installed() { [[ -f $INSTALL_RECORD ]] && grep -qxF "$1" "$INSTALL_RECORD"; }

remove_installed_files() {
	local unit pkg
	local -a pkgs=()
	for unit in "${SKIFF_UNITS[@]}"; do rm -f "$UNIT_DIR/$unit"; done
	[[ -d /run/systemd/system ]] && systemctl daemon-reload
	rm -f "$INSTALL_BIN/skiff-apiserver" "$INSTALL_BIN/skiff-agent" "$CNI_INSTALL_DIR/skiff-cni"
	rmdir "$CNI_INSTALL_DIR" /opt/cni 2>/dev/null || true
	if [[ -f $SYSTEM_CONTAINERD_CONFIG ]] && grep -qF "$CONTAINERD_MARKER" "$SYSTEM_CONTAINERD_CONFIG"; then
		rm -f "$SYSTEM_CONTAINERD_CONFIG"
		rmdir /etc/containerd 2>/dev/null || true
		# a containerd that stays gets its default configuration back
		if ! installed "package containerd" && [[ -d /run/systemd/system ]]; then
			systemctl try-restart containerd.service || true
		fi
	fi
	for pkg in "${SKIFF_PACKAGES[@]}"; do installed "package $pkg" && pkgs+=("$pkg"); done
	if ((${#pkgs[@]})); then
		log "apt-get purge ${pkgs[*]} (installed by install.sh)"
		DEBIAN_FRONTEND=noninteractive apt-get purge -y -q -o DPkg::Lock::Timeout=300 "${pkgs[@]}" >/dev/null ||
			log "apt-get purge ${pkgs[*]} failed"
		DEBIAN_FRONTEND=noninteractive apt-get autoremove --purge -y -q >/dev/null || true
		# containerd's data of a containerd skiff installed
		if installed "package containerd"; then
			rm -rf /var/lib/containerd /run/containerd
			# containerd 1.6 creates its (empty) CNI config dir even with the CRI plugin off
			rmdir /etc/cni/net.d /etc/cni 2>/dev/null || true
		fi
	fi
	rm -rf "$ETC_DIR"
}

uninstall() {
	local -a uids
	mapfile -t uids < <(pod_uids)
	step "stop the skiff units"
	stop_units
	step "remove containers (namespace $CTR_NAMESPACE)"
	remove_containers "$CTR_NAMESPACE"
	remove_images
	step "unmount"
	unmount_all
	step "network"
	remove_network
	step "cgroups"
	remove_cgroups
	step "run-time files"
	remove_pod_logs "${uids[@]}"
	remove_files "${uids[@]}"
	step "installed files"
	remove_installed_files
	# shellcheck disable=SC2034 # read by die() in scripts/lib.sh
	CURRENT_STEP=""
	local leftovers
	leftovers=$(list_leftovers)
	if [[ -n $leftovers ]]; then
		log "could not remove everything:"
		printf '%s\n' "$leftovers" | sed 's/^/    /' >&2
		exit 1
	fi
	log "skiff is uninstalled"
}

[[ $# -eq 0 ]] || {
	sed -n '2,13s/^# \{0,1\}//p' "$0" >&2
	exit 2
}
require_root
install_error_trap
uninstall
