# shellcheck shell=bash
# shellcheck disable=SC2034 # NSPAWN_PID / NSPAWN_LEADER are results for the sourcing scripts
# systemd-nspawn machines on this host (booted with systemd as PID 1), shared by
# scripts/lab.sh and systemd/nspawn-test.sh. Sourced after scripts/lib.sh (log, die, wait_until).
# Recipe and caveats: ../shared/reference/lab-notes.md §1 and systemd/README.md.
#
#   nspawn_build_rootfs                       cached Debian 12 minbase rootfs with systemd (debootstrap, once)
#   nspawn_cgroup_create REL / _remove REL    a cgroup REL (e.g. skiff-lab/m1) in every hierarchy
#   nspawn_start NAME DIR BRIDGE CONSOLE CGROUP [NSPAWN ARGS...]
#                                             boot DIR as machine NAME on BRIDGE, detached; NSPAWN_PID
#   nspawn_wait_booted PID SECONDS            wait for systemd to be up; NSPAWN_LEADER = its PID
#   nspawn_cgroups_rw LEADER                  make the machine's cgroup v1 controllers writable
#   nspawn_in LEADER CMD...                   run CMD in every namespace of the machine
#   nspawn_poweroff PID LEADER SECONDS        systemctl poweroff, SIGKILL after SECONDS
#   nspawn_nat_setup TABLE BRIDGE SUBNET      machines on BRIDGE reach DNS and HTTP(S) (apt) through
#   nspawn_nat_remove TABLE                   the host: nft table ip TABLE
#
# Facts this relies on (host PID 1 is not systemd, cgroup v1+v2 hybrid): nspawn needs
# --register=no --keep-unit (no host D-Bus/machined); containerd+runc inside need the keyring
# and bpf syscalls (--system-call-filter) and writable v1 controllers. nspawn mounts each v1
# hierarchy inside the machine's cgroup namespace, rooted at the cgroup it was started from:
# started from its own cgroup (nspawn_cgroup_create), a machine sees and writes only its subtree,
# so its pods' cgroups (/skiff/pod...) land in /sys/fs/cgroup/<ctrl>/<REL>/skiff/... on the host
# and never touch the host's own /skiff.

NSPAWN_CACHE=${SKIFF_NSPAWN_CACHE:-/var/cache/skiff/nspawn}
NSPAWN_ROOTFS=$NSPAWN_CACHE/rootfs
NSPAWN_MIRROR=${SKIFF_DEBIAN_MIRROR:-http://deb.debian.org/debian}
NSPAWN_PID=""
NSPAWN_LEADER=""
# the v1 controllers nspawn mounts read-only inside a machine
NSPAWN_V1_CONTROLLERS=(blkio cpu cpuacct cpuset devices freezer hugetlb memory net_cls net_prio perf_event pids rdma misc)

nspawn_build_rootfs() {
	[[ -x $NSPAWN_ROOTFS/lib/systemd/systemd ]] && return 0
	command -v debootstrap >/dev/null || die "debootstrap missing (apt-get install debootstrap)"
	log "debootstrap bookworm into $NSPAWN_ROOTFS (once, ~2 min)"
	rm -rf "$NSPAWN_ROOTFS.tmp"
	mkdir -p "$NSPAWN_CACHE"
	debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,iproute2,ca-certificates,procps \
		bookworm "$NSPAWN_ROOTFS.tmp" "$NSPAWN_MIRROR" >"$NSPAWN_CACHE/debootstrap.log" 2>&1 ||
		die "debootstrap failed (log: $NSPAWN_CACHE/debootstrap.log)"
	# minbase has no /etc/hosts; containerd bind-mounts it into containers.
	printf '127.0.0.1 localhost\n::1 localhost\n' >"$NSPAWN_ROOTFS.tmp/etc/hosts"
	mv "$NSPAWN_ROOTFS.tmp" "$NSPAWN_ROOTFS"
}

# nspawn_hierarchies: every mounted cgroup hierarchy root (v1 controllers, name=systemd, unified).
nspawn_hierarchies() {
	awk '$3 == "cgroup" || $3 == "cgroup2" { print $2 }' /proc/self/mounts | sort -u
}

# nspawn_cgroup_create REL: REL in every hierarchy (cpuset needs cpus/mems before it takes a task).
nspawn_cgroup_create() {
	local rel=$1 root dir part path
	local -a parts
	while read -r root; do
		path=$root
		IFS=/ read -ra parts <<<"$rel"
		for part in "${parts[@]}"; do
			dir=$path/$part
			if [[ ! -d $dir ]]; then
				mkdir "$dir" || die "cannot create cgroup $dir"
			fi
			if [[ -f $dir/cpuset.cpus && -z $(<"$dir/cpuset.cpus") ]]; then
				cat "$path/cpuset.cpus" >"$dir/cpuset.cpus"
				cat "$path/cpuset.mems" >"$dir/cpuset.mems"
			fi
			path=$dir
		done
	done < <(nspawn_hierarchies)
}

# nspawn_cgroup_remove REL: remove REL and everything under it in every hierarchy (its processes
# must be gone); non-zero when something is left.
nspawn_cgroup_remove() {
	local rel=$1 root rc=0
	while read -r root; do
		[[ -d $root/$rel ]] || continue
		find "$root/$rel" -depth -type d -exec rmdir {} + 2>/dev/null || true
		[[ -d $root/$rel ]] && rc=1
	done < <(nspawn_hierarchies)
	return "$rc"
}

# nspawn_start NAME DIR BRIDGE CONSOLE CGROUP [ARGS...]: boot DIR as machine NAME, its host0
# interface on BRIDGE, detached in its own session (CGROUP empty: the caller's cgroups);
# NSPAWN_PID = systemd-nspawn's PID.
nspawn_start() {
	local name=$1 dir=$2 bridge=$3 console=$4 cgroup=$5 root
	shift 5
	mkdir -p "$(dirname "$console")"
	(
		# a lock the caller holds (lib.sh lock_state) must not live on in the machine
		if [[ -n ${LOCK_FD:-} ]]; then exec {LOCK_FD}<&-; fi
		if [[ -n $cgroup ]]; then
			while read -r root; do
				printf '%s\n' "$BASHPID" >"$root/$cgroup/cgroup.procs"
			done < <(nspawn_hierarchies)
		fi
		# not a process group leader (background job of a script): setsid execs in place
		exec setsid systemd-nspawn -b -D "$dir" -M "$name" --register=no --keep-unit --console=pipe \
			--network-bridge="$bridge" --system-call-filter='@keyring bpf' "$@" \
			</dev/null >>"$console" 2>&1
	) &
	NSPAWN_PID=$!
}

# nspawn_leader PID: the machine's PID 1 (systemd), a child of systemd-nspawn PID.
nspawn_leader() {
	local child
	for child in $(pgrep -P "$1" 2>/dev/null); do
		[[ $(cat "/proc/$child/comm" 2>/dev/null) == systemd ]] && {
			printf '%s\n' "$child"
			return 0
		}
	done
	return 1
}

# nspawn_wait_booted PID SECONDS: NSPAWN_LEADER once `systemctl is-system-running` says
# running or degraded; non-zero when nspawn exits or the time is up.
nspawn_wait_booted() {
	local pid=$1 deadline=$((SECONDS + $2)) leader state
	NSPAWN_LEADER=""
	while ((SECONDS < deadline)); do
		kill -0 "$pid" 2>/dev/null || return 1
		if leader=$(nspawn_leader "$pid"); then
			state=$(nspawn_in "$leader" systemctl is-system-running 2>/dev/null || true)
			if [[ $state == running || $state == degraded ]]; then
				NSPAWN_LEADER=$leader
				return 0
			fi
		fi
		sleep 0.1
	done
	return 1
}

# nspawn_cgroups_rw LEADER: nspawn mounts the v1 controllers read-only; containerd and runc in
# the machine need them writable (a plain remount fails with "busy": it must be a bind remount).
# Only for a machine started from its own cgroup (nspawn_start CGROUP): otherwise its view is the
# host's root of each hierarchy.
nspawn_cgroups_rw() {
	local leader=$1 c
	for c in "${NSPAWN_V1_CONTROLLERS[@]}"; do
		grep -q " /sys/fs/cgroup/$c ro," "/proc/$leader/mountinfo" 2>/dev/null || continue
		nsenter -t "$leader" -m mount -o remount,bind,rw "/sys/fs/cgroup/$c" ||
			die "cannot make /sys/fs/cgroup/$c writable in machine (leader $leader)"
	done
}

# nspawn_in LEADER CMD...: run in every namespace of the machine (its network too).
nspawn_in() {
	local leader=$1
	shift
	nsenter -t "$leader" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "$@"
}

# nspawn_poweroff PID LEADER SECONDS: clean shutdown; after SECONDS the machine's PID 1 gets
# SIGKILL, which ends every process of the machine (a pod's PID 1 that ignores SIGTERM would
# otherwise hold systemd-shutdown for its 90 s), then systemd-nspawn itself if need be.
nspawn_poweroff() {
	local pid=$1 leader=$2 timeout=$3
	kill -0 "$pid" 2>/dev/null || return 0
	if [[ -n $leader ]] && kill -0 "$leader" 2>/dev/null; then
		nspawn_in "$leader" systemctl poweroff >/dev/null 2>&1 || true
	fi
	wait_until "$timeout" nspawn_gone "$pid" && return 0
	leader=$(nspawn_leader_any "$pid" || true)
	if [[ -n $leader ]]; then
		log "machine (nspawn pid $pid) did not power off within ${timeout}s: SIGKILL to its PID 1 ($leader)"
		kill -KILL "$leader" 2>/dev/null || true
	fi
	# the machine is gone; nspawn may still be removing an --ephemeral copy (slow on a busy host)
	wait_until 120 nspawn_gone "$pid" && return 0
	log "systemd-nspawn $pid is still there: SIGKILL"
	kill -KILL "$pid" 2>/dev/null || true
	wait_until 10 nspawn_gone "$pid" || true
}

# nspawn_leader_any PID: the machine's PID 1 whatever it runs now (systemd, systemd-shutdown).
nspawn_leader_any() {
	pgrep -P "$1" 2>/dev/null | head -n 1 | grep .
}

# nspawn_gone PID: systemd-nspawn PID has exited (a zombie counts as gone).
nspawn_gone() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	stat=${stat##*) }
	[[ ${stat:0:1} == Z ]]
}

# nspawn_nat_setup TABLE BRIDGE SUBNET: the machines on BRIDGE (SUBNET, default route via the
# bridge's host address) reach the host's DNS servers and TCP 80/443 (the Debian mirror) through a
# masquerade in nft table `ip TABLE`; every other packet leaving the bridge is dropped. Run as a VM
# would be, install.sh uses the machine's own network (its server's API included).
nspawn_nat_setup() {
	local table=$1 bridge=$2 subnet=$3 dns
	dns=$(awk '$1 == "nameserver" && $2 ~ /^[0-9.]+$/ { printf "%s%s", sep, $2; sep = ", " }' /etc/resolv.conf)
	[[ -n $dns ]] || die "no IPv4 nameserver in /etc/resolv.conf (the machines copy it)"
	if [[ $(</proc/sys/net/ipv4/ip_forward) != 1 ]]; then
		log "enabling net.ipv4.ip_forward (the machines reach the Debian mirror through the host)"
		sysctl -qw net.ipv4.ip_forward=1
	fi
	nspawn_nat_remove "$table"
	nft -f - <<-EOF
		table ip $table {
			comment "skiff nspawn machines: DNS and HTTP(S) only"
			chain forward {
				type filter hook forward priority filter; policy accept;
				iifname "$bridge" oifname != "$bridge" ip daddr { $dns } meta l4proto { tcp, udp } th dport 53 accept
				iifname "$bridge" oifname != "$bridge" tcp dport { 80, 443 } accept
				iifname "$bridge" oifname != "$bridge" drop
			}
			chain postrouting {
				type nat hook postrouting priority srcnat; policy accept;
				ip saddr $subnet oifname != "$bridge" masquerade
			}
		}
	EOF
}

nspawn_nat_remove() {
	if nft list table ip "$1" >/dev/null 2>&1; then nft delete table ip "$1"; fi
}
