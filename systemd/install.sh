#!/usr/bin/env bash
# Install skiff on a Debian 12 machine with systemd.
#
#   sudo systemd/install.sh server [--bin-dir DIR] [--advertise-address IP] [--node-name NAME]
#                                  [--node-ip IP] [--cluster-cidr CIDR] [--no-agent]
#                                  [--registry-mirror URL]
#   sudo systemd/install.sh agent --server https://HOST:6443 --kubeconfig FILE [--bin-dir DIR]
#                                 [--node-name NAME] [--node-ip IP] [--registry-mirror URL]
#                                 [--wait SECONDS]   (wait for FILE to appear, e.g. from a synced folder)
#   sudo systemd/install.sh node-kubeconfig NAME OUT [--server URL]     (on the server)
#
# server: installs containerd, runc, nftables and the binaries (from --bin-dir, default the
# repo's target/release), writes /etc/skiff/*.env and the containerd config, installs
# skiff-cni into /opt/cni/bin, enables and starts skiff-apiserver and (unless --no-agent) a
# skiff-agent for this machine, then prints the admin kubeconfig and how to join agents.
# agent: the same packages and binaries, and skiff-agent with a node kubeconfig minted on the
# server by `install.sh node-kubeconfig` (user system:node:<name>, group system:nodes).
# Token-based join (`skiff-apiserver token create`) is a later step of issue 7.
# Running it again with the same arguments changes nothing; systemd/uninstall.sh undoes it.
set -Eeuo pipefail
SKIFF_SYSTEMD_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../scripts/lib.sh
source "$SKIFF_SYSTEMD_DIR/../scripts/lib.sh"
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$SKIFF_SYSTEMD_DIR/common.sh"

CHANGED=()
MODE=""
BIN_SRC=$SKIFF_REPO/target/release
ADVERTISE=""
NODE=""
NODE_IP=""
CIDR=10.244.0.0/16
WITH_AGENT=1
MIRROR=""
SERVER=""
KUBECONFIG_IN=""
WAIT=0

usage() {
	sed -n '2,19s/^# \{0,1\}//p' "$0" >&2
	exit 2
}

changed() {
	CHANGED+=("$1")
	log "changed: $1"
}

# install_file SRC DST MODE: copy when the content differs; 0 when it was copied.
install_file() {
	local src=$1 dst=$2 mode=$3
	if [[ -f $dst ]] && cmp -s "$src" "$dst"; then
		[[ $(stat -c %a "$dst") == "$mode" ]] || chmod "$mode" "$dst"
		return 1
	fi
	mkdir -p "$(dirname "$dst")"
	install -m "$mode" "$src" "$dst.skiff-new"
	mv -f "$dst.skiff-new" "$dst"
	changed "$dst"
}

# write_file DST MODE: stdin becomes DST when the content differs; 0 when written.
write_file() {
	local dst=$1 mode=$2
	mkdir -p "$(dirname "$dst")"
	if write_if_changed "$dst"; then
		chmod "$mode" "$dst"
		changed "$dst"
		return 0
	fi
	[[ $(stat -c %a "$dst") == "$mode" ]] || chmod "$mode" "$dst"
	return 1
}

record() {
	mkdir -p "$ETC_DIR"
	touch "$INSTALL_RECORD"
	grep -qxF "$1" "$INSTALL_RECORD" || printf '%s\n' "$1" >>"$INSTALL_RECORD"
}

# --- packages -------------------------------------------------------------------------
install_packages() {
	local pkg
	local -a missing=()
	for pkg in "${SKIFF_PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
	done
	((${#missing[@]} == 0)) && return 0
	apt_install "${missing[@]}"
	for pkg in "${missing[@]}"; do record "package $pkg"; done
	changed "packages: ${missing[*]}"
}

check_systemd() {
	[[ -d /run/systemd/system ]] || die "systemd is not running (PID 1 is $(cat /proc/1/comm)): this installer is for systemd machines; use scripts/up.sh instead"
}

# --- binaries ---------------------------------------------------------------------------
install_binaries() {
	local bin
	for bin in skiff-apiserver skiff-agent skiff-cni; do
		[[ -x $BIN_SRC/$bin ]] || die "$BIN_SRC/$bin is missing: build with 'cargo build --release' or pass --bin-dir DIR"
	done
	BIN_CHANGED=0
	if [[ $MODE == server ]]; then
		install_file "$BIN_SRC/skiff-apiserver" "$INSTALL_BIN/skiff-apiserver" 755 && BIN_CHANGED=1
	fi
	install_file "$BIN_SRC/skiff-agent" "$INSTALL_BIN/skiff-agent" 755 && BIN_CHANGED=1
	install_file "$BIN_SRC/skiff-cni" "$CNI_INSTALL_DIR/skiff-cni" 755 || true
	# the server's node-kubeconfig helper needs skiff-apiserver; agents do not.
	return 0
}

# --- containerd -------------------------------------------------------------------------
configure_containerd() {
	local restart=0
	if [[ -f $SYSTEM_CONTAINERD_CONFIG ]] && ! grep -qF "$CONTAINERD_MARKER" "$SYSTEM_CONTAINERD_CONFIG"; then
		log "keeping the existing $SYSTEM_CONTAINERD_CONFIG (not written by skiff)"
	else
		write_file "$SYSTEM_CONTAINERD_CONFIG" 644 <<-EOF && restart=1
			$CONTAINERD_MARKER
			# skiff-agent drives this containerd through its native API (namespace $CTR_NAMESPACE).
			version = 2
			disabled_plugins = ["io.containerd.grpc.v1.cri"]
		EOF
		record "containerd-config"
	fi
	systemctl is-enabled --quiet containerd.service || { systemctl enable containerd.service && changed "enabled containerd"; }
	if ! systemctl is-active --quiet containerd.service; then
		systemctl start containerd.service
		changed "started containerd"
	elif ((restart)); then
		systemctl restart containerd.service
	fi
	wait_until 30 ctr --address "$SYSTEM_CONTAINERD_SOCK" version ||
		die "containerd does not answer on $SYSTEM_CONTAINERD_SOCK (journalctl -u containerd)"
}

# --- units --------------------------------------------------------------------------------
install_units() {
	local unit
	UNITS_CHANGED=0
	for unit in "$@"; do
		install_file "$SKIFF_SYSTEMD_DIR/$unit" "$UNIT_DIR/$unit" 644 && UNITS_CHANGED=1
	done
	((UNITS_CHANGED)) && systemctl daemon-reload
	return 0
}

# start_unit UNIT RESTART: enable it, start it, or restart it when RESTART=1 (its files changed).
# Type=notify: start returns once the binary has sent READY=1.
start_unit() {
	local unit=$1 restart=$2
	systemctl is-enabled --quiet "$unit" || { systemctl enable "$unit" 2>/dev/null && changed "enabled $unit"; }
	if ! systemctl is-active --quiet "$unit"; then
		log "starting $unit"
		systemctl start "$unit" || {
			journalctl -u "$unit" -n 30 --no-pager >&2 || true
			die "$unit did not start (journalctl -u $unit)"
		}
		changed "started $unit"
	elif ((restart)); then
		log "restarting $unit (its binary or settings changed)"
		systemctl restart "$unit" || die "$unit did not restart (journalctl -u $unit)"
	fi
}

# --- settings -------------------------------------------------------------------------------
default_ip() {
	ip -4 route get 1.1.1.1 2>/dev/null | awk '{for (i = 1; i < NF; i++) if ($i == "src") {print $(i + 1); exit}}'
}

write_apiserver_env() {
	write_file "$ETC_DIR/apiserver.env" 600 <<-EOF
		# skiff-apiserver settings (written by systemd/install.sh; one SKIFF_* per flag)
		SKIFF_DATA_DIR=$APISERVER_DATA
		SKIFF_BIND_ADDRESS=0.0.0.0
		SKIFF_SECURE_PORT=$SECURE_PORT
		SKIFF_ADVERTISE_ADDRESS=$ADVERTISE
		SKIFF_CLUSTER_CIDR=$CIDR
		SKIFF_NODE_CIDR_MASK_SIZE=24
		RUST_LOG=info
		NO_COLOR=1
	EOF
}

write_agent_env() {
	local ip_line="# SKIFF_NODE_IP= (default: first non-loopback IPv4)"
	[[ -n $NODE_IP ]] && ip_line="SKIFF_NODE_IP=$NODE_IP"
	write_file "$ETC_DIR/agent.env" 600 <<-EOF
		# skiff-agent settings (written by systemd/install.sh; one SKIFF_* per flag)
		SKIFF_KUBECONFIG=$AGENT_KUBECONFIG
		SKIFF_NODE_NAME=$NODE
		$ip_line
		SKIFF_CONTAINERD_SOCKET=$SYSTEM_CONTAINERD_SOCK
		SKIFF_CONTAINERD_NAMESPACE=$CTR_NAMESPACE
		SKIFF_ROOT_DIR=$STATE/agent
		SKIFF_RUN_DIR=$RUN_DIR
		SKIFF_POD_LOG_DIR=$POD_LOG_DIR
		SKIFF_CNI_CONF_DIR=$STATE/cni/net.d
		SKIFF_CNI_BIN_DIR=$CNI_INSTALL_DIR:/usr/lib/cni
		SKIFF_REGISTRY_CONFIG=$ETC_DIR/registries.yaml
		SKIFF_CLUSTER_CIDR=$CIDR
		RUST_LOG=info
		NO_COLOR=1
	EOF
}

# write_registries: /etc/skiff/registries.yaml for --registry-mirror; 0 when it was written.
write_registries() {
	[[ -n $MIRROR ]] || return 1
	write_file "$ETC_DIR/registries.yaml" 644 <<-EOF
		# registry mirror (k3s format, written by systemd/install.sh --registry-mirror)
		mirrors:
		  docker.io:
		    endpoint:
		      - "$MIRROR"
	EOF
}

# mint_node_kubeconfig NAME SERVER OUT: a node credential signed by the cluster CA.
mint_node_kubeconfig() {
	local name=$1 server=$2 out=$3 tmp
	tmp=$(mktemp)
	"$INSTALL_BIN/skiff-apiserver" kubeconfig --data-dir "$APISERVER_DATA" \
		--user "system:node:$name" --group system:nodes --server "$server" --out "$tmp" >/dev/null ||
		die "skiff-apiserver kubeconfig failed for system:node:$name"
	mkdir -p "$(dirname "$out")"
	install -m 600 "$tmp" "$out"
	rm -f "$tmp"
}

# --- modes ------------------------------------------------------------------------------------
settings_common() {
	NODE=${NODE:-$(hostname | tr '[:upper:]' '[:lower:]')}
	[[ $NODE =~ ^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$ ]] || die "'$NODE' is not a valid node name; pass --node-name"
	mkdir -p "$ETC_DIR"
	chmod 755 "$ETC_DIR"
}

install_server() {
	local restart
	ADVERTISE=${ADVERTISE:-$(default_ip)}
	[[ -n $ADVERTISE ]] || die "cannot find this machine's address; pass --advertise-address IP"
	settings_common
	step "packages"
	install_packages
	step "binaries"
	install_binaries
	step "containerd"
	configure_containerd
	step "skiff-apiserver"
	restart=$BIN_CHANGED
	write_apiserver_env && restart=1
	install_units skiff-apiserver.service skiff-agent.service
	((UNITS_CHANGED)) && restart=1
	start_unit skiff-apiserver.service "$restart"
	[[ -f $APISERVER_DATA/admin.kubeconfig ]] || die "skiff-apiserver did not write $APISERVER_DATA/admin.kubeconfig"
	if ((WITH_AGENT)); then
		step "skiff-agent"
		if [[ ! -s $AGENT_KUBECONFIG ]]; then
			mint_node_kubeconfig "$NODE" "https://127.0.0.1:$SECURE_PORT" "$AGENT_KUBECONFIG"
			changed "$AGENT_KUBECONFIG"
			restart=1
		fi
		write_agent_env && restart=1
		write_registries && restart=1
		start_unit skiff-agent.service "$restart"
	fi
	CURRENT_STEP=""
	report
	cat >&2 <<-EOF
		$SCRIPT_NAME: skiff server is up on https://$ADVERTISE:$SECURE_PORT
		    admin kubeconfig: $APISERVER_DATA/admin.kubeconfig   (export KUBECONFIG=$APISERVER_DATA/admin.kubeconfig)
		    to join an agent named NAME:
		      here:      $SKIFF_SYSTEMD_DIR/install.sh node-kubeconfig NAME /tmp/NAME.kubeconfig
		      copy /tmp/NAME.kubeconfig to the agent, then there:
		                 install.sh agent --server https://$ADVERTISE:$SECURE_PORT --kubeconfig NAME.kubeconfig --node-name NAME
		    (token-based join, install.sh agent --token, is not implemented yet)
	EOF
}

install_agent() {
	local restart tmp
	[[ $SERVER =~ ^https://[^/]+$ ]] || die "--server https://HOST:PORT is required"
	if ((WAIT > 0)) && [[ -n $KUBECONFIG_IN && ! -s $KUBECONFIG_IN ]]; then
		log "waiting up to ${WAIT}s for $KUBECONFIG_IN (minted on the server)"
		wait_until "$WAIT" test -s "$KUBECONFIG_IN" || die "$KUBECONFIG_IN did not appear within ${WAIT}s"
	fi
	[[ -n $KUBECONFIG_IN && -s $KUBECONFIG_IN ]] || die "--kubeconfig FILE (a node kubeconfig from 'install.sh node-kubeconfig' on the server) is required"
	grep -qE '^ *client-certificate-data:' "$KUBECONFIG_IN" ||
		die "$KUBECONFIG_IN has no client certificate: mint it on the server with 'install.sh node-kubeconfig NAME OUT'"
	settings_common
	step "packages"
	install_packages
	step "binaries"
	install_binaries
	step "containerd"
	configure_containerd
	step "skiff-agent"
	restart=$BIN_CHANGED
	# The kubeconfig's server becomes --server (the file may have been minted for 127.0.0.1).
	tmp=$(mktemp)
	sed -E "s#^( *server: ).*#\\1\"$SERVER\"#" "$KUBECONFIG_IN" >"$tmp"
	write_file "$AGENT_KUBECONFIG" 600 <"$tmp" && restart=1
	rm -f "$tmp"
	write_agent_env && restart=1
	write_registries && restart=1
	install_units skiff-agent.service
	((UNITS_CHANGED)) && restart=1
	start_unit skiff-agent.service "$restart"
	CURRENT_STEP=""
	report
	log "node $NODE joined $SERVER (journalctl -u skiff-agent)"
}

node_kubeconfig() {
	local name=$1 out=$2 server=${SERVER:-}
	[[ -x $INSTALL_BIN/skiff-apiserver && -d $APISERVER_DATA/pki ]] ||
		die "no skiff server installed here: run 'install.sh server' first"
	[[ $name =~ ^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$ ]] || die "'$name' is not a valid node name"
	if [[ -z $server ]]; then
		server="https://$(sed -n 's/^SKIFF_ADVERTISE_ADDRESS=//p' "$ETC_DIR/apiserver.env"):$SECURE_PORT"
	fi
	if [[ -s $out ]] && grep -qF "server: \"$server\"" "$out"; then
		log "$out exists (server $server); nothing to do"
		return 0
	fi
	mint_node_kubeconfig "$name" "$server" "$out"
	log "wrote $out (user system:node:$name, server $server)"
}

report() {
	if ((${#CHANGED[@]} == 0)); then
		log "nothing changed: skiff is installed and running"
	else
		log "${#CHANGED[@]} change(s)"
	fi
}

main() {
	[[ $# -ge 1 ]] || usage
	MODE=$1
	shift
	local -a pos=()
	while (($#)); do
		case $1 in
		--bin-dir) BIN_SRC=${2:?}; shift ;;
		--advertise-address) ADVERTISE=${2:?}; shift ;;
		--node-name) NODE=${2:?}; shift ;;
		--node-ip) NODE_IP=${2:?}; shift ;;
		--cluster-cidr) CIDR=${2:?}; shift ;;
		--registry-mirror) MIRROR=${2:?}; shift ;;
		--server) SERVER=${2:?}; shift ;;
		--kubeconfig) KUBECONFIG_IN=${2:?}; shift ;;
		--wait)
			WAIT=${2:?}
			[[ $WAIT =~ ^[0-9]+$ ]] || die "--wait takes seconds"
			shift
			;;
		--no-agent) WITH_AGENT=0 ;;
		-h | --help) usage ;;
		-*) die "unknown option $1" ;;
		*) pos+=("$1") ;;
		esac
		shift
	done
	require_root
	install_error_trap
	case $MODE in
	server)
		((${#pos[@]} == 0)) || usage
		check_systemd
		install_server
		;;
	agent)
		((${#pos[@]} == 0)) || usage
		check_systemd
		install_agent
		;;
	node-kubeconfig)
		((${#pos[@]} == 2)) || usage
		node_kubeconfig "${pos[0]}" "${pos[1]}"
		;;
	*) usage ;;
	esac
}

main "$@"
