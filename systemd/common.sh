# shellcheck shell=bash
# Paths shared by systemd/install.sh and systemd/uninstall.sh (sourced after scripts/lib.sh,
# whose STATE=/var/lib/skiff, RUN_DIR=/run/skiff, POD_LOG_DIR and CNI names they reuse).
# shellcheck disable=SC2034 # used by the scripts that source this file
ETC_DIR=/etc/skiff
INSTALL_RECORD=$ETC_DIR/installed
INSTALL_BIN=/usr/local/bin
CNI_INSTALL_DIR=/opt/cni/bin
UNIT_DIR=/etc/systemd/system
SKIFF_UNITS=(skiff-agent.service skiff-apiserver.service)
SKIFF_PACKAGES=(containerd runc nftables iptables iproute2 ca-certificates containernetworking-plugins)
SYSTEM_CONTAINERD_SOCK=/run/containerd/containerd.sock
SYSTEM_CONTAINERD_CONFIG=/etc/containerd/config.toml
CONTAINERD_MARKER="# written by skiff systemd/install.sh"
APISERVER_DATA=$STATE/apiserver
AGENT_KUBECONFIG=$ETC_DIR/agent.kubeconfig
SECURE_PORT=6443
