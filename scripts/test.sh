#!/usr/bin/env bash
# Runs skiff's whole test suite: formatting and lints, unit and root integration tests (real containerd, netns,
# registry, API server, etcd), then the end-to-end tests: the one-node lab (scripts/up.sh, real kubectl,
# scripts/down.sh) and the three-machine lab (scripts/lab.sh: systemd-nspawn machines provisioned with
# systemd/install.sh and joined with a token).
#
#   sudo ./scripts/test.sh            everything
#   sudo ./scripts/test.sh --no-e2e   skip both lab tests
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

if [[ $(id -u) -ne 0 ]]; then
    echo "test.sh: the suite needs root (network namespaces, containerd, mounts): run it with sudo" >&2
    exit 1
fi

run_e2e=1
for arg in "$@"; do
    case "$arg" in
        --no-e2e) run_e2e=0 ;;
        *) echo "test.sh: unknown argument $arg" >&2; exit 2 ;;
    esac
done

step() { printf '\n== %s\n' "$*"; }

# The debug and release builds take about 6.5 GB under target/ (session 11: 4.8 GB for clippy and the test
# binaries, 1.4 GB release), the labs' images and machines about 1.5 GB more. Say so up front rather than
# fail half an hour in with `No space left on device`.
free_kib=$(df --output=avail -k "$repo" | tail -1)
if [[ $free_kib =~ ^[0-9]+$ && $free_kib -lt $((8 * 1024 * 1024)) ]]; then
    echo "test.sh: warning: only $((free_kib / 1024)) MiB free on the file system of $repo; the suite needs about 8 GiB" >&2
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "shell scripts and the Vagrantfile (shellcheck, vagrant validate)"
"$repo/systemd/test.sh"

step "unit and integration tests (root)"
# Root tests start their own containerd, registry and API server; they must not skip silently without root.
export SKIFF_TEST_REQUIRE_ROOT=1
cargo test --workspace --locked -- --test-threads=2

if [[ $run_e2e -eq 1 ]]; then
    step "end-to-end lab test"
    "$repo/e2e/lab.sh"
    step "end-to-end multi-machine lab test"
    "$repo/e2e/multinode.sh"
fi
