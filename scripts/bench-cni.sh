#!/usr/bin/env bash
# ADD+DEL cycle latency of skiff-cni (release build) and of the reference bridge + host-local
# plugins (Debian's containernetworking-plugins), in the same run and under the same conditions:
# both configured alike (gateway, masquerade, host-local IPAM), each cycle = one ADD + one DEL of a
# pod network namespace, timed around the plugin processes (exec included).
#
#   sudo ./scripts/bench-cni.sh [ROUNDS]          (default 100)
#
# Everything happens inside a throwaway "host" network namespace (bridges skbench0/skbench1,
# subnets 10.253.0.0/24 and 10.253.1.0/24, its own nftables/iptables state) and a temp dir, all
# removed at the end; the machine's own network is not touched. skiff-cni is built with
# `cargo build --release` into target/bench (SKIFF_BENCH_TARGET) so a lab using target/release
# is not disturbed; SKIFF_CNI_BIN uses an existing binary instead. REF_CNI_DIR (default
# /usr/lib/cni) holds the reference plugins.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rounds=${1:-100}
host_ns=skbench-host
pod_ns=skbench-pod
ref_dir=${REF_CNI_DIR:-/usr/lib/cni}

if [[ ${SKIFF_BENCH_INNER:-} != 1 ]]; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "bench-cni.sh: needs root (network namespaces)" >&2
        exit 1
    fi
    if [[ -z ${SKIFF_CNI_BIN:-} ]]; then
        target=${SKIFF_BENCH_TARGET:-$repo/target/bench}
        echo "building skiff-cni (release) into $target ..." >&2
        (cd "$repo" && cargo build -q --release -p skiff-cni --bin skiff-cni --target-dir "$target")
        SKIFF_CNI_BIN=$target/release/skiff-cni
    fi
    work=$(mktemp -d /tmp/skiff-bench-cni.XXXXXX)
    # shellcheck disable=SC2317 # invoked by the EXIT trap
    cleanup() {
        ip netns del "$pod_ns" 2>/dev/null || true
        ip netns del "$host_ns" 2>/dev/null || true
        rm -rf "$work"
    }
    trap cleanup EXIT
    ip netns del "$pod_ns" 2>/dev/null || true
    ip netns del "$host_ns" 2>/dev/null || true
    ip netns add "$host_ns"
    ip netns add "$pod_ns"
    ip -n "$host_ns" link set lo up
    SKIFF_BENCH_INNER=1 SKIFF_CNI_BIN=$SKIFF_CNI_BIN WORK=$work \
        ip netns exec "$host_ns" "$0" "$rounds"
    exit $?
fi

# Inside the throwaway host namespace from here on (WORK comes from the outer invocation's environment).
pod=/run/netns/$pod_ns
bin_dir=${WORK:?}/bin
mkdir -p "$bin_dir"
ln -sf "$SKIFF_CNI_BIN" "$bin_dir/skiff-cni"

skiff_conf='{"cniVersion":"1.0.0","name":"skbench","type":"skiff-cni","bridge":"skbench0",
  "isGateway":true,"ipMasq":true,"nftTable":"skbench",
  "ipam":{"type":"host-local","subnet":"10.253.0.0/24","dataDir":"'$WORK'/ipam"}}'
ref_conf='{"cniVersion":"1.0.0","name":"skbenchref","type":"bridge","bridge":"skbench1",
  "isGateway":true,"isDefaultGateway":true,"ipMasq":true,
  "ipam":{"type":"host-local","subnet":"10.253.1.0/24","dataDir":"'$WORK'/ipam"}}'

# cycle BIN CONF ID: one ADD + one DEL; prints the elapsed microseconds.
cycle() {
    local bin=$1 conf=$2 id=$3 t0 t1
    export CNI_CONTAINERID=$id CNI_NETNS=$pod CNI_IFNAME=eth0 CNI_PATH=$ref_dir
    t0=$EPOCHREALTIME
    CNI_COMMAND=ADD "$bin" <<<"$conf" >"$WORK/out" || { echo "ADD failed: $(cat "$WORK/out")" >&2; exit 1; }
    CNI_COMMAND=DEL "$bin" <<<"$conf" >"$WORK/out" || { echo "DEL failed: $(cat "$WORK/out")" >&2; exit 1; }
    t1=$EPOCHREALTIME
    echo $(( ${t1/./} - ${t0/./} ))
}

# stats FILE: "median p99" in ms.
stats() {
    sort -n "$1" | awk '{v[NR]=$1} END {
        m = (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2;
        i = int(NR * 0.99 + 0.999999); if (i > NR) i = NR; if (i < 1) i = 1;
        printf "%.2f %.2f\n", m / 1000, v[i] / 1000 }'
}

# Warm up both (first ADD creates the bridge, nft table / iptables chains, IPAM dirs).
cycle "$bin_dir/skiff-cni" "$skiff_conf" warm >/dev/null
cycle "$ref_dir/bridge" "$ref_conf" warm >/dev/null

: >"$WORK/skiff.us"
: >"$WORK/ref.us"
: >"$WORK/floor.us"
# Interleave the two so that background load hits both alike; the floor is two execs of
# /bin/true (what any plugin pays for being a process on this host right now).
for i in $(seq 1 "$rounds"); do
    cycle "$bin_dir/skiff-cni" "$skiff_conf" "bench-$i" >>"$WORK/skiff.us"
    cycle "$ref_dir/bridge" "$ref_conf" "bench-$i" >>"$WORK/ref.us"
    t0=$EPOCHREALTIME; /bin/true; /bin/true; t1=$EPOCHREALTIME
    echo $(( ${t1/./} - ${t0/./} )) >>"$WORK/floor.us"
done

read -r s_med s_p99 < <(stats "$WORK/skiff.us")
read -r r_med r_p99 < <(stats "$WORK/ref.us")
read -r f_med f_p99 < <(stats "$WORK/floor.us")
ratio=$(awk -v r="$r_med" -v s="$s_med" 'BEGIN { printf "%.1f", r / s }')
printf 'ADD+DEL cycle, %d rounds (ms)      median      p99\n' "$rounds"
printf '  skiff-cni (release)          %9s %9s\n' "$s_med" "$s_p99"
printf '  reference bridge+host-local  %9s %9s\n' "$r_med" "$r_p99"
printf '  exec floor (2x /bin/true)    %9s %9s\n' "$f_med" "$f_p99"
printf '  reference / skiff-cni median ratio: %sx\n' "$ratio"
printf '  load average: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
