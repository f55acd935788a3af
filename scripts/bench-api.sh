#!/usr/bin/env bash
# API benchmark (a measurement, not a test). Starts its own skiff-apiserver and its own etcd (Debian's
# etcd-server, 3.4) on free 127.0.0.1 ports with temporary data directories, runs the same workload against
# both, stops them by PID and prints both and the ratios; then skiff-apiserver with --storage etcd on that etcd.
#
#   ./scripts/bench-api.sh [CREATES]        defaults: CREATES=2000; PROFILE=release (or debug)
#
# Workload (apiserver-lite/examples/bench_api.rs), the same keys and values for both:
#   create, 1 client and 16 clients: CREATES ConfigMaps (~0.5 KiB JSON), creates/s and p50/p99 latency.
#     skiff: POST /api/v1/namespaces/bench/configmaps (HTTPS, client certificate, HTTP/2).
#     etcd:  a create-if-absent txn (compare create_revision = 0, put) on /v3/kv/txn (JSON gateway).
#   watch: 100 watchers, 200 objects written 5 ms apart; p99 of (delivery time - write start time).
#     skiff: GET …/configmaps?watch=true&labelSelector=…; etcd: /v3/watch on the key prefix.
# Targets on a 2-core machine: >= 1000 creates/s with 16 clients, p99 create <= 20 ms with 1 client,
# watch delivery p99 <= 50 ms with 100 watchers.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
creates=${1:-2000}
profile=${PROFILE:-release}
case $profile in
    release) build_flag=--release ;;
    debug) build_flag= ;;
    *) echo "bench-api: PROFILE must be release or debug" >&2; exit 2 ;;
esac
command -v etcd >/dev/null || { echo "bench-api: etcd not found (apt-get install etcd-server)" >&2; exit 1; }

cd "$repo"
cargo build $build_flag --quiet -p skiff-apiserver --bin skiff-apiserver --example bench_api
bin="$repo/target/$profile"

tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for() { # URL [curl args...]
    local url=$1
    shift
    for _ in $(seq 1 100); do
        if curl -sf --max-time 1 "$@" "$url" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    echo "bench-api: $url did not come up" >&2
    return 1
}

run_skiff() { # NAME [skiff-apiserver flags...]: serve, benchmark into $tmp/NAME.json
    local name=$1 port
    shift
    port=$(free_port)
    "$bin/skiff-apiserver" serve --data-dir "$tmp/$name" --bind-address 127.0.0.1 --secure-port "$port" \
        --advertise-address 127.0.0.1 "$@" >"$tmp/$name.log" 2>&1 &
    pids+=($!)
    wait_for "https://127.0.0.1:$port/readyz" -k
    local kc="$tmp/$name/admin.kubeconfig"
    field() { awk -v k="$1:" '$1 == k { print $2; exit }' "$kc" | base64 -d; }
    field certificate-authority-data >"$tmp/$name-ca.pem"
    field client-certificate-data >"$tmp/$name-cert.pem"
    field client-key-data >"$tmp/$name-key.pem"
    "$bin/examples/bench_api" --target skiff --url "https://127.0.0.1:$port" \
        --ca "$tmp/$name-ca.pem" --cert "$tmp/$name-cert.pem" --key "$tmp/$name-key.pem" \
        --creates "$creates" | tee "$tmp/$name.json"
}

echo "== skiff-apiserver ($profile build, embedded store)"
run_skiff skiff

echo "== etcd $(etcd --version | awk '/etcd Version/ {print $3}')"
cport=$(free_port)
pport=$(free_port)
etcd --name bench --data-dir "$tmp/etcd" \
    --listen-client-urls "http://127.0.0.1:$cport" --advertise-client-urls "http://127.0.0.1:$cport" \
    --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
    --initial-cluster "bench=http://127.0.0.1:$pport" >"$tmp/etcd.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$cport/health"
"$bin/examples/bench_api" --target etcd --url "http://127.0.0.1:$cport" --creates "$creates" | tee "$tmp/etcd.json"

# Third column (SKIFF_ON_ETCD=0 skips it): skiff-apiserver itself storing in the same etcd, under its own prefix.
if [ "${SKIFF_ON_ETCD:-1}" = 1 ]; then
    echo "== skiff-apiserver on etcd (--storage etcd)"
    run_skiff skiff-etcd --storage etcd --etcd-servers "http://127.0.0.1:$cport" --etcd-prefix /skiff-bench
fi

echo "== summary (skiff vs etcd; ratio = skiff / etcd)"
touch "$tmp/skiff-etcd.json"
python3 - "$tmp/skiff.json" "$tmp/etcd.json" "$tmp/skiff-etcd.json" <<'EOF'
import json, sys
def load(p):
    return {(r["phase"], r["clients"]): r for r in map(json.loads, open(p))}
s, e, se = load(sys.argv[1]), load(sys.argv[2]), load(sys.argv[3])
def ratio(a, b):
    return f"{a / b:.2f}" if b else "n/a"
for key in sorted(s):
    a, b = s[key], e.get(key, {})
    name = f"{key[0]} x{key[1]}"
    if key[0] == "create":
        print(f"{name:12} skiff {a['per_sec']:7.0f}/s p50 {a['p50_ms']:6.2f} ms p99 {a['p99_ms']:6.2f} ms | "
              f"etcd {b.get('per_sec', 0):7.0f}/s p50 {b.get('p50_ms', 0):6.2f} ms p99 {b.get('p99_ms', 0):6.2f} ms | "
              f"throughput ratio {ratio(a['per_sec'], b.get('per_sec', 0))}, p99 ratio {ratio(a['p99_ms'], b.get('p99_ms', 0))}")
    else:
        print(f"{name:12} skiff p50 {a['p50_ms']:6.2f} ms p99 {a['p99_ms']:6.2f} ms ({a['ops']} deliveries) | "
              f"etcd p50 {b.get('p50_ms', 0):6.2f} ms p99 {b.get('p99_ms', 0):6.2f} ms | p99 ratio {ratio(a['p99_ms'], b.get('p99_ms', 0))}")
for key in sorted(se):
    a = se[key]
    name = f"{key[0]} x{key[1]}"
    if key[0] == "create":
        print(f"{name:12} skiff-on-etcd {a['per_sec']:7.0f}/s p50 {a['p50_ms']:6.2f} ms p99 {a['p99_ms']:6.2f} ms")
    else:
        print(f"{name:12} skiff-on-etcd p50 {a['p50_ms']:6.2f} ms p99 {a['p99_ms']:6.2f} ms ({a['ops']} deliveries)")
c16, c1, w = s.get(("create", 16), {}), s.get(("create", 1), {}), s.get(("watch", 100), {})
print("targets: creates/s x16 >= 1000: %s; p99 create x1 <= 20 ms: %s; watch p99 <= 50 ms: %s" % (
    "met" if c16.get("per_sec", 0) >= 1000 else "NOT met",
    "met" if 0 < c1.get("p99_ms", 1e9) <= 20 else "NOT met",
    "met" if 0 < w.get("p99_ms", 1e9) <= 50 else "NOT met"))
EOF
