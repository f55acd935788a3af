#!/usr/bin/env bash
# Install skiff on a Debian 12 machine with systemd.
#
#   sudo systemd/install.sh server [--bin-dir DIR] [--advertise-address IP] [--node-name NAME]
#                                  [--node-ip IP] [--cluster-cidr CIDR] [--no-agent]
#                                  [--registry-mirror URL] [--token-ttl 24h]
#                                  [--eviction-hard SPEC] [--image-gc-high-threshold PERCENT]
#   sudo systemd/install.sh agent --server https://HOST:6443 (--token TOKEN | --token-file FILE
#                                 | --kubeconfig FILE) [--bin-dir DIR] [--node-name NAME]
#                                 [--node-ip IP] [--registry-mirror URL] [--eviction-hard SPEC]
#                                 [--image-gc-high-threshold PERCENT]
#                                 [--wait SECONDS]   (wait for FILE to appear, e.g. from a synced folder)
#   sudo systemd/install.sh node-kubeconfig NAME OUT [--server URL]     (on the server)
#
# server: installs containerd, runc, nftables and the binaries (from --bin-dir, default the
# repo's target/release), writes /etc/skiff/{apiserver,agent}.yaml and the containerd config, installs
# skiff-cni into /opt/cni/bin, enables and starts skiff-apiserver and (unless --no-agent) a
# skiff-agent for this machine, then prints the admin kubeconfig and the join command with a
# join token (kept in /etc/skiff/join-token and reused while it is valid).
# agent: the same packages and binaries, and skiff-agent joined with a token
# (K10<CA sha256>::<id>.<secret> from `skiff-apiserver token create`: the agent pins the CA and
# obtains its node certificate through a CSR), or with a node kubeconfig minted on the server by
# `install.sh node-kubeconfig` (user system:node:<name>, group system:nodes).
# --eviction-hard: the agent's hard eviction thresholds in the kubelet's syntax
# (memory.available<100Mi,nodefs.available<1Gi,...); default: the kubelet's.
# --image-gc-high-threshold: disk usage (%) of containerd's root at which unused images are deleted
# (down to 80 %); 100 turns image GC off; default: the kubelet's 85.
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
EVICTION_HARD=""
IMAGE_GC_HIGH=""
SERVER=""
KUBECONFIG_IN=""
TOKEN=""
TOKEN_FILE=""
TOKEN_TTL=24h
JOIN_TOKEN_FILE=$ETC_DIR/join-token
WAIT=0

usage() {
	sed -n '2,25s/^# \{0,1\}//p' "$0" >&2
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

# yq VALUE: VALUE as a single-quoted YAML scalar.
yq() {
	local q="'"
	printf "'%s'" "${1//$q/$q$q}"
}

# retire_env NAME: remove /etc/skiff/NAME.env when an older install.sh wrote it (its settings now live
# in NAME.yaml, and a stale env file would override them); 0 when it was removed.
retire_env() {
	local env=$ETC_DIR/$1.env
	[[ -f $env && $(head -n1 "$env") == *'written by systemd/install.sh'* ]] || return 1
	rm -f "$env"
	changed "$env (removed: settings moved to $ETC_DIR/$1.yaml)"
}

# write_apiserver_config: /etc/skiff/apiserver.yaml (keys = long flags of `skiff-apiserver serve`).
write_apiserver_config() {
	local rc=1
	retire_env apiserver && rc=0
	write_file "$ETC_DIR/apiserver.yaml" 600 <<-EOF && rc=0
		# skiff-apiserver settings (written by systemd/install.sh; keys are the long flags of
		# \`skiff-apiserver serve --help\`; flags and SKIFF_* variables override them)
		data-dir: $(yq "$APISERVER_DATA")
		bind-address: 0.0.0.0
		secure-port: $SECURE_PORT
		advertise-address: $(yq "$ADVERTISE")
		cluster-cidr: $(yq "$CIDR")
		node-cidr-mask-size: 24
	EOF
	return $rc
}

# write_agent_config: /etc/skiff/agent.yaml (keys = long flags of skiff-agent; 0600: it may hold the
# join token).
write_agent_config() {
	local rc=1 ip_line="# node-ip: (default: first non-loopback IPv4)"
	local join_lines="# server:, token: (token join; this node has a minted kubeconfig)"
	local eviction_line="# eviction-hard: (default: the kubelet's hard thresholds)"
	local gc_line="# image-gc-high-threshold: (default: 85, the kubelet's)"
	[[ -n $IMAGE_GC_HIGH ]] && gc_line="image-gc-high-threshold: $(yq "$IMAGE_GC_HIGH")"
	[[ -n $NODE_IP ]] && ip_line="node-ip: $(yq "$NODE_IP")"
	[[ -n $EVICTION_HARD ]] && eviction_line="eviction-hard: $(yq "$EVICTION_HARD")"
	[[ -n $TOKEN ]] && join_lines="server: $(yq "$SERVER")"$'\n'"token: $(yq "$TOKEN")"
	retire_env agent && rc=0
	write_file "$ETC_DIR/agent.yaml" 600 <<-EOF && rc=0
		# skiff-agent settings (written by systemd/install.sh; keys are the long flags of
		# \`skiff-agent --help\`; flags and SKIFF_* variables override them)
		kubeconfig: $(yq "$AGENT_KUBECONFIG")
		$join_lines
		node-name: $(yq "$NODE")
		$ip_line
		containerd-socket: $(yq "$SYSTEM_CONTAINERD_SOCK")
		containerd-namespace: $(yq "$CTR_NAMESPACE")
		root-dir: $(yq "$STATE/agent")
		run-dir: $(yq "$RUN_DIR")
		pod-log-dir: $(yq "$POD_LOG_DIR")
		cni-conf-dir: $(yq "$STATE/cni/net.d")
		cni-bin-dir: [$(yq "$CNI_INSTALL_DIR"), '/usr/lib/cni']
		registry-config: $(yq "$ETC_DIR/registries.yaml")
		cluster-cidr: $(yq "$CIDR")
		$eviction_line
		$gc_line
	EOF
	return $rc
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

# ensure_join_token: JOIN_TOKEN = the token in $JOIN_TOKEN_FILE while the server still knows it
# and it has not expired, else a fresh one (`skiff-apiserver token create`).
ensure_join_token() {
	local id
	if [[ -s $JOIN_TOKEN_FILE ]]; then
		JOIN_TOKEN=$(<"$JOIN_TOKEN_FILE")
		id=${JOIN_TOKEN#*::}
		id=${id%%.*}
		if "$INSTALL_BIN/skiff-apiserver" token list --data-dir "$APISERVER_DATA" |
			awk -v id="$id" '$1 == id && $2 != "<expired>" { found = 1 } END { exit !found }'; then
			return 0
		fi
	fi
	JOIN_TOKEN=$("$INSTALL_BIN/skiff-apiserver" token create --data-dir "$APISERVER_DATA" \
		--ttl "$TOKEN_TTL" --description "join token printed by install.sh server") ||
		die "skiff-apiserver token create failed"
	printf '%s\n' "$JOIN_TOKEN" | write_file "$JOIN_TOKEN_FILE" 600 || true
}

# check_join: before anything is changed, the server must present the CA the token pins and
# accept the token (skiff-agent --check-join prints why not).
check_join() {
	local out
	out=$("$BIN_SRC/skiff-agent" --check-join --server "$SERVER" --token "$TOKEN" \
		--kubeconfig "$AGENT_KUBECONFIG" --node-name "$NODE" \
		--registry-config "$ETC_DIR/registries.yaml" 2>&1) || {
		printf '%s\n' "$out" | grep -v '^ *$' | tail -n 3 >&2
		die "the join with --token was refused (nothing was changed)"
	}
}

# --- modes ------------------------------------------------------------------------------------
# node_setting: NODE (default: the hostname), validated; changes nothing on the machine.
node_setting() {
	NODE=${NODE:-$(hostname | tr '[:upper:]' '[:lower:]')}
	[[ $NODE =~ ^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$ ]] || die "'$NODE' is not a valid node name; pass --node-name"
}

settings_common() {
	node_setting
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
	write_apiserver_config && restart=1
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
		write_agent_config && restart=1
		write_registries && restart=1
		start_unit skiff-agent.service "$restart"
	fi
	step "join token"
	ensure_join_token
	CURRENT_STEP=""
	report
	cat >&2 <<-EOF
		$SCRIPT_NAME: skiff server is up on https://$ADVERTISE:$SECURE_PORT
		    admin kubeconfig: $APISERVER_DATA/admin.kubeconfig   (export KUBECONFIG=$APISERVER_DATA/admin.kubeconfig)
		    join token (also in $JOIN_TOKEN_FILE; more: skiff-apiserver token create|list|delete):
		    to join an agent, run there:
		      install.sh agent --server https://$ADVERTISE:$SECURE_PORT --token $JOIN_TOKEN
	EOF
}

install_agent() {
	local restart tmp
	[[ $SERVER =~ ^https://[^/]+$ ]] || die "--server https://HOST:PORT is required"
	if [[ -n $TOKEN_FILE ]]; then
		if ((WAIT > 0)) && [[ ! -s $TOKEN_FILE ]]; then
			log "waiting up to ${WAIT}s for $TOKEN_FILE"
			wait_until "$WAIT" test -s "$TOKEN_FILE" || die "$TOKEN_FILE did not appear within ${WAIT}s"
		fi
		[[ -s $TOKEN_FILE ]] || die "--token-file $TOKEN_FILE is missing or empty"
		TOKEN=$(tr -d '[:space:]' <"$TOKEN_FILE")
	fi
	if [[ -n $TOKEN ]]; then
		[[ -z $KUBECONFIG_IN ]] || die "give --token or --kubeconfig, not both"
		[[ $TOKEN =~ ^K10[0-9a-f]{64}::[a-z0-9]{6}\.[a-z0-9]{16}$ ]] ||
			die "--token must be K10<sha256 of the CA>::<id>.<secret> (from 'skiff-apiserver token create' on the server)"
		# a refused join must leave the machine as it was: no settings_common (mkdir /etc/skiff) yet
		node_setting
		# Already joined (its kubeconfig exists): the token is not needed any more (it may have expired).
		if [[ ! -s $AGENT_KUBECONFIG ]]; then
			[[ -x $BIN_SRC/skiff-agent ]] || die "$BIN_SRC/skiff-agent is missing: build with 'cargo build --release' or pass --bin-dir DIR"
			check_join
		fi
	else
		if ((WAIT > 0)) && [[ -n $KUBECONFIG_IN && ! -s $KUBECONFIG_IN ]]; then
			log "waiting up to ${WAIT}s for $KUBECONFIG_IN (minted on the server)"
			wait_until "$WAIT" test -s "$KUBECONFIG_IN" || die "$KUBECONFIG_IN did not appear within ${WAIT}s"
		fi
		[[ -n $KUBECONFIG_IN && -s $KUBECONFIG_IN ]] || die "--token TOKEN or --kubeconfig FILE (a node kubeconfig from 'install.sh node-kubeconfig' on the server) is required"
		grep -qE '^ *client-certificate-data:' "$KUBECONFIG_IN" ||
			die "$KUBECONFIG_IN has no client certificate: mint it on the server with 'install.sh node-kubeconfig NAME OUT'"
	fi
	settings_common
	step "packages"
	install_packages
	step "binaries"
	install_binaries
	step "containerd"
	configure_containerd
	step "skiff-agent"
	restart=$BIN_CHANGED
	if [[ -n $KUBECONFIG_IN ]]; then
		# The kubeconfig's server becomes --server (the file may have been minted for 127.0.0.1).
		tmp=$(mktemp)
		sed -E "s#^( *server: ).*#\\1\"$SERVER\"#" "$KUBECONFIG_IN" >"$tmp"
		write_file "$AGENT_KUBECONFIG" 600 <"$tmp" && restart=1
		rm -f "$tmp"
	fi
	# With a token the agent writes $AGENT_KUBECONFIG itself on its first start (the join).
	write_agent_config && restart=1
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
		server="https://$(sed -n "s/^advertise-address: '\\(.*\\)'\$/\\1/p" "$ETC_DIR/apiserver.yaml"):$SECURE_PORT"
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
		--eviction-hard) EVICTION_HARD=${2:?}; shift ;;
		--image-gc-high-threshold) IMAGE_GC_HIGH=${2:?}; shift ;;
		--server) SERVER=${2:?}; shift ;;
		--kubeconfig) KUBECONFIG_IN=${2:?}; shift ;;
		--token) TOKEN=${2:?}; shift ;;
		--token-file) TOKEN_FILE=${2:?}; shift ;;
		--token-ttl) TOKEN_TTL=${2:?}; shift ;;
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
