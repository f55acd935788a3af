#!/usr/bin/env bash
# Build the lab's offline images from Debian packages and push them to the lab registry.
#
#   scripts/build-images.sh [--force] [--verify]
#
#   127.0.0.1:5000/library/busybox:1.35, …/library/busybox:latest   Debian busybox-static
#   127.0.0.1:5000/library/nginx:latest                              Debian nginx + its libraries
#
# Only the Debian mirror is used (`apt-get download` + `dpkg -x`); the OCI image layout
# is written by hand (tar + gzip + sha256 + JSON) so the result is reproducible: same
# Debian package versions => same digests. Images the registry already has are skipped
# unless --force. --verify runs every image in the lab containerd (namespace
# skiff-selftest, removed afterwards): busybox runs a shell, nginx is curled inside a
# network namespace. The registry must be up (scripts/up.sh starts it).
set -Eeuo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DEB_DIR=$CACHE_DIR/debs
PATH_ENV="PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
WORK=""
# Set while the self test has things to clean up (see verify_cleanup).
VERIFY_NETNS=""
VERIFY_LOG=""

usage() {
	sed -n '2,14s/^# \{0,1\}//p' "$0" >&2
	exit 2
}

cleanup_work() {
	[[ -n $VERIFY_NETNS ]] && verify_cleanup
	[[ -n $WORK && -d $WORK ]] && rm -rf "$WORK"
	return 0
}

# --- Debian packages -----------------------------------------------------------------
# known_version PACKAGE: set VERSION to the candidate version, after an `apt-get
# update` if apt does not know the package yet (fresh machine, empty lists). Results
# go through globals, not $(...), so that apt_update_once runs once per script.
VERSION=""
DEB=""
known_version() {
	VERSION=$(apt_candidate "$1")
	if [[ -z $VERSION ]]; then
		apt_update_once
		VERSION=$(apt_candidate "$1")
	fi
	[[ -n $VERSION ]] || die "Debian package $1 is not available from the configured mirror"
}

# fetch_deb PACKAGE: set DEB to the candidate .deb in the cache, downloaded if missing.
fetch_deb() {
	local pkg=$1
	known_version "$pkg"
	mkdir -p "$DEB_DIR"
	DEB=$(find_cached_deb "$pkg" "$VERSION")
	if [[ -z $DEB ]]; then
		if ! download_deb "$pkg" "$VERSION" && ((!APT_UPDATED)); then
			# Stale lists name a version the mirror no longer has.
			apt_update_once
			known_version "$pkg"
			download_deb "$pkg" "$VERSION" || true
		fi
		DEB=$(find_cached_deb "$pkg" "$VERSION")
	fi
	if [[ -z $DEB ]]; then
		tail_log "$(apt_log)"
		die "apt-get download $pkg=$VERSION failed (log: $(apt_log))"
	fi
}

download_deb() {
	(cd "$DEB_DIR" && apt-get download -q -o APT::Sandbox::User=root "$1=$2" >>"$(apt_log)" 2>&1)
}

find_cached_deb() {
	local pkg=$1 version=$2
	# apt-get download escapes the epoch colon as %3a.
	compgen -G "$DEB_DIR/${pkg}_${version//:/%3a}_*.deb" | head -n 1 || true
}

# extract_debs PACKAGE... ROOTFS: unpack the packages; "pkg=version" lines go to
# $WORK/packages (recorded in the image history).
extract_debs() {
	local rootfs=${*: -1} pkg
	for pkg in "${@:1:$#-1}"; do
		fetch_deb "$pkg"
		dpkg-deb -x "$DEB" "$rootfs"
		printf '%s=%s\n' "$pkg" "$(dpkg-deb -f "$DEB" Version)" >>"$WORK/packages"
	done
}

# library_closure PACKAGE...: the shared-library packages (lib*, zlib*) the given
# packages depend on, transitively through library packages only.
library_closure() {
	local -A seen=()
	local -a queue=("$@")
	local pkg dep
	while ((${#queue[@]})); do
		pkg=${queue[0]}
		queue=("${queue[@]:1}")
		while read -r dep; do
			[[ $dep =~ ^(lib|zlib) && -z ${seen[$dep]:-} ]] || continue
			seen[$dep]=1
			queue+=("$dep")
		done < <(apt-cache depends --no-recommends --no-suggests --no-conflicts \
			--no-breaks --no-replaces --no-enhances "$pkg" 2>/dev/null |
			awk '$1 ~ /^\|?(Pre)?Depends:$/ && $2 !~ /^</ {print $2}')
	done
	printf '%s\n' "${!seen[@]}" | sort
}

# --- rootfs pieces --------------------------------------------------------------------
# add_busybox ROOTFS: /bin/busybox, /bin/sh and every applet as a symlink (never
# replacing a file that is already there).
add_busybox() {
	local rootfs=$1 tmp applet
	tmp=$WORK/busybox-deb
	mkdir -p "$tmp"
	extract_debs busybox-static "$tmp"
	install -D -m 0755 "$tmp/bin/busybox" "$rootfs/bin/busybox"
	while read -r applet; do
		[[ -n $applet && $applet != bin/busybox ]] || continue
		[[ -e $rootfs/$applet || -L $rootfs/$applet ]] && continue
		mkdir -p "$rootfs/$(dirname "$applet")"
		ln -s /bin/busybox "$rootfs/$applet"
	done < <("$tmp/bin/busybox" --list-full)
	[[ -e $rootfs/bin/sh || -L $rootfs/bin/sh ]] || ln -s /bin/busybox "$rootfs/bin/sh"
}

# base_files ROOTFS PASSWD_LINES GROUP_LINES: /etc files, /tmp, /root, /run.
base_files() {
	local rootfs=$1 passwd=$2 group=$3
	mkdir -p "$rootfs"/{etc,root,run,tmp,var/tmp,proc,sys,dev}
	chmod 1777 "$rootfs/tmp" "$rootfs/var/tmp"
	chmod 0700 "$rootfs/root"
	printf '%s\n' "$passwd" >"$rootfs/etc/passwd"
	printf '%s\n' "$group" >"$rootfs/etc/group"
	printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
}

# --- OCI layout ---------------------------------------------------------------------
sha256_of() { sha256sum "$1" | cut -d' ' -f1; }
size_of() { stat -c %s "$1"; }

# json_array ITEM...: ["item",...] (items must not need escaping beyond plain text).
json_array() {
	local out="" item
	for item in "$@"; do out+="${out:+,}\"$item\""; done
	printf '[%s]' "$out"
}

# write_layout ROOTFS LAYOUT EPOCH CONFIG_JSON_FRAGMENT HISTORY_TEXT
# Packs ROOTFS as one gzip layer and writes an OCI image layout (tag "latest").
write_layout() {
	local rootfs=$1 layout=$2 epoch=$3 config=$4 history=$5
	local blobs=$layout/blobs/sha256 created layer_tar diff_id layer_digest layer_size
	local cfg_file cfg_digest cfg_size manifest man_digest man_size
	created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)
	mkdir -p "$blobs"
	layer_tar=$WORK/layer.tar
	tar -C "$rootfs" --sort=name --format=gnu --numeric-owner \
		--mtime="@$epoch" --clamp-mtime -cf "$layer_tar" .
	diff_id=$(sha256_of "$layer_tar")
	gzip -n -6 -c "$layer_tar" >"$WORK/layer.tar.gz"
	layer_digest=$(sha256_of "$WORK/layer.tar.gz")
	layer_size=$(size_of "$WORK/layer.tar.gz")
	mv "$WORK/layer.tar.gz" "$blobs/$layer_digest"
	rm -f "$layer_tar"

	cfg_file=$WORK/config.json
	printf '{"created":"%s","architecture":"amd64","os":"linux","config":%s,"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"%s","created_by":"%s"}]}' \
		"$created" "$config" "$diff_id" "$created" "$history" >"$cfg_file"
	cfg_digest=$(sha256_of "$cfg_file")
	cfg_size=$(size_of "$cfg_file")
	mv "$cfg_file" "$blobs/$cfg_digest"

	manifest=$WORK/manifest.json
	printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
		"$cfg_digest" "$cfg_size" "$layer_digest" "$layer_size" >"$manifest"
	man_digest=$(sha256_of "$manifest")
	man_size=$(size_of "$manifest")
	mv "$manifest" "$blobs/$man_digest"

	printf '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"
	printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}' \
		"$man_digest" "$man_size" >"$layout/index.json"
	log "  manifest sha256:$man_digest"
}

# newest_mtime DIR: the newest file time in DIR (seconds), used as the image date so
# that the same packages always give the same image.
newest_mtime() {
	find "$1" -type f -printf '%T@\n' | cut -d. -f1 | sort -n | tail -n 1
}

# push LAYOUT REPO TAG...
push() {
	local layout=$1 repo=$2 tag
	shift 2
	for tag in "$@"; do
		skopeo copy --quiet --dest-tls-verify=false \
			"oci:$layout:latest" "docker://$REGISTRY/$repo:$tag" >&2 ||
			die "skopeo could not push $repo:$tag to $REGISTRY"
		log "  pushed $REGISTRY/$repo:$tag"
	done
}

# --- images -------------------------------------------------------------------------
build_busybox() {
	local rootfs=$WORK/busybox/rootfs layout=$WORK/busybox/oci epoch versions
	mkdir -p "$rootfs" "$layout"
	: >"$WORK/packages"
	add_busybox "$rootfs"
	base_files "$rootfs" \
		"$(printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false')" \
		"$(printf 'root:x:0:\nnobody:x:65534:\nnogroup:x:65534:')"
	epoch=$(newest_mtime "$WORK/busybox-deb")
	versions=$(paste -sd' ' "$WORK/packages")
	write_layout "$rootfs" "$layout" "$epoch" \
		"{\"Env\":[\"$PATH_ENV\"],\"Cmd\":[\"sh\"]}" \
		"skiff scripts/build-images.sh from Debian $versions"
	push "$layout" library/busybox 1.35 latest
}

build_nginx() {
	local rootfs=$WORK/nginx/rootfs layout=$WORK/nginx/oci epoch versions
	local -a libs
	mkdir -p "$rootfs" "$layout"
	: >"$WORK/packages"
	known_version nginx
	mapfile -t libs < <(library_closure nginx)
	extract_debs nginx nginx-common "${libs[@]}" "$rootfs"
	epoch=$(newest_mtime "$rootfs")
	add_busybox "$rootfs"
	base_files "$rootfs" \
		"$(printf 'root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false')" \
		"$(printf 'root:x:0:\nwww-data:x:33:\nnobody:x:65534:\nnogroup:x:65534:')"
	nginx_files "$rootfs"
	check_libraries "$rootfs" usr/sbin/nginx
	versions=$(paste -sd' ' "$WORK/packages")
	write_layout "$rootfs" "$layout" "$epoch" \
		"{\"Env\":[\"$PATH_ENV\"],\"Cmd\":$(json_array nginx -g 'daemon off;'),\"ExposedPorts\":{\"80/tcp\":{}},\"StopSignal\":\"SIGQUIT\"}" \
		"skiff scripts/build-images.sh from Debian $versions"
	push "$layout" library/nginx latest
}

# nginx_files ROOTFS: what the Debian maintainer scripts would have done, plus the
# container conventions of the official image (logs to stdout/stderr, port 80).
nginx_files() {
	local rootfs=$1 d
	for d in body proxy fastcgi uwsgi scgi; do mkdir -p "$rootfs/var/lib/nginx/$d"; done
	chown 33:33 "$rootfs"/var/lib/nginx/*
	mkdir -p "$rootfs/var/log/nginx" "$rootfs/var/www/html" "$rootfs/etc/nginx/sites-enabled" \
		"$rootfs/etc/nginx/modules-enabled" "$rootfs/etc/nginx/conf.d"
	ln -sf /dev/stdout "$rootfs/var/log/nginx/access.log"
	ln -sf /dev/stderr "$rootfs/var/log/nginx/error.log"
	# nginx-common's postinst copies the welcome page; the default site serves it.
	cp "$rootfs/usr/share/nginx/html/index.html" "$rootfs/var/www/html/index.nginx-debian.html"
	# Debian's default site also listens on [::]:80, which fails in a pod without IPv6.
	cat >"$rootfs/etc/nginx/sites-available/default" <<-'EOF'
		# skiff lab image: Debian's default site, IPv4 only.
		server {
			listen 80 default_server;
			root /var/www/html;
			index index.html index.htm index.nginx-debian.html;
			server_name _;
			location / {
				try_files $uri $uri/ =404;
			}
		}
	EOF
	ln -sf ../sites-available/default "$rootfs/etc/nginx/sites-enabled/default"
	grep -q '^user www-data;' "$rootfs/etc/nginx/nginx.conf" ||
		die "unexpected /etc/nginx/nginx.conf in the nginx-common package (no 'user www-data;')"
}

# check_libraries ROOTFS BINARY: every shared library of BINARY resolves inside ROOTFS.
check_libraries() {
	local rootfs=$1 binary=$2 out
	out=$(chroot "$rootfs" /lib64/ld-linux-x86-64.so.2 --list "/$binary" 2>&1) ||
		die "cannot list the libraries of /$binary in the image: $out"
	if grep -q 'not found' <<<"$out"; then
		die "libraries of /$binary missing from the image: $(grep 'not found' <<<"$out" | tr -s ' \t\n' ' ')"
	fi
	chroot "$rootfs" "/$binary" -v >/dev/null 2>&1 || die "/$binary does not run inside its image rootfs"
}

# --- self test in the lab containerd --------------------------------------------------
selftest_ctr() { lab_ctr -n "$SELFTEST_NAMESPACE" "$@"; }

task_stopped() {
	[[ $(selftest_ctr task ls | awk -v id="$1" '$1 == id {print $3}') == STOPPED ]]
}

verify_images() {
	local netns=skiff-selftest out logfile
	containerd_up || die "the lab containerd is not running ($CONTAINERD_SOCK): run scripts/up.sh first"
	logfile=$WORK/nginx-stdout.log
	VERIFY_NETNS=$netns VERIFY_LOG=$logfile
	step "verify: busybox"
	selftest_ctr images pull --plain-http "$REGISTRY/library/busybox:1.35" >/dev/null
	# shellcheck disable=SC2016 # the script runs inside the container
	out=$(selftest_ctr run --rm "$REGISTRY/library/busybox:1.35" skiff-selftest-busybox \
		sh -c 'id nobody; ls -ld /tmp; n=0; for a in $(busybox --list-full); do
			[ -e "/$a" ] && n=$((n + 1)); done; echo "applets $n of $(busybox --list | wc -l)"' 2>&1)
	grep -q 'uid=65534(nobody)' <<<"$out" || die "busybox image: no user nobody: $out"
	grep -q '^drwxrwxrwt' <<<"$out" || die "busybox image: /tmp is not 1777: $out"
	grep -qE '^applets ([0-9]+) of \1$' <<<"$out" || die "busybox image: applet links are missing: $out"

	step "verify: nginx"
	selftest_ctr images pull --plain-http "$REGISTRY/library/nginx:latest" >/dev/null
	ip netns add "$netns"
	ip -n "$netns" link set lo up
	selftest_ctr run -d --log-uri "file://$logfile" \
		--with-ns "network:/run/netns/$netns" \
		"$REGISTRY/library/nginx:latest" skiff-selftest-nginx >/dev/null
	if ! wait_until 20 nsenter --net="/run/netns/$netns" curl -fsS -o /dev/null http://127.0.0.1/; then
		tail_log "$logfile"
		die "nginx image: nothing answers on port 80"
	fi
	out=$(nsenter --net="/run/netns/$netns" curl -fsS http://127.0.0.1/)
	grep -q 'Welcome to nginx!' <<<"$out" || die "nginx image: no welcome page"
	wait_until 5 grep -q 'GET / HTTP' "$logfile" || die "nginx image: the access log does not reach stdout"
	selftest_ctr task kill -s SIGQUIT skiff-selftest-nginx
	wait_until 20 task_stopped skiff-selftest-nginx || die "nginx image: SIGQUIT did not stop nginx within 20s"
	verify_cleanup
	log "verify: busybox runs a shell, nginx serves 'Welcome to nginx!' and logs to stdout"
}

# verify_cleanup: remove everything the self test created (also on failure, from the
# EXIT trap).
verify_cleanup() {
	local id
	for id in $(selftest_ctr containers ls -q 2>/dev/null); do
		selftest_ctr task kill -s SIGKILL "$id" >/dev/null 2>&1 || true
		selftest_ctr task rm -f "$id" >/dev/null 2>&1 || true
		selftest_ctr containers rm "$id" >/dev/null 2>&1 || true
	done
	for id in $(selftest_ctr images ls -q 2>/dev/null); do
		selftest_ctr images rm --sync "$id" >/dev/null 2>&1 || true
	done
	for id in $(selftest_ctr content ls -q 2>/dev/null); do
		selftest_ctr content rm "$id" >/dev/null 2>&1 || true
	done
	lab_ctr namespaces rm "$SELFTEST_NAMESPACE" >/dev/null 2>&1 || true
	ip netns del "$VERIFY_NETNS" 2>/dev/null || true
	rm -f "$VERIFY_LOG"
	VERIFY_NETNS="" VERIFY_LOG=""
	rmdir "/run/containerd/runc/$SELFTEST_NAMESPACE" 2>/dev/null || true
	find /sys/fs/cgroup -mindepth 1 -maxdepth 2 -type d -name "$SELFTEST_NAMESPACE" \
		-exec rmdir {} + 2>/dev/null || true
}

main() {
	local force=0 verify=0 arg
	for arg in "$@"; do
		case $arg in
		--force) force=1 ;;
		--verify) verify=1 ;;
		-h | --help) usage ;;
		*) usage ;;
		esac
	done
	require_root
	install_error_trap
	for arg in apt-get apt-cache dpkg-deb skopeo curl tar gzip sha256sum chroot; do
		command -v "$arg" >/dev/null || die "$arg is missing (scripts/up.sh installs what the lab needs)"
	done
	registry_up || die "the lab registry does not answer on http://$REGISTRY/v2/ (start it with scripts/up.sh)"
	mkdir -p "$CACHE_DIR/tmp"
	WORK=$(mktemp -d "$CACHE_DIR/tmp/build-images.XXXXXX")
	trap cleanup_work EXIT

	if ((force)) || ! registry_has library/busybox 1.35 || ! registry_has library/busybox latest; then
		step "build image library/busybox (1.35, latest)"
		build_busybox
	else
		log "library/busybox:1.35 and :latest are in the registry (--force rebuilds)"
	fi
	if ((force)) || ! registry_has library/nginx latest; then
		step "build image library/nginx (latest)"
		build_nginx
	else
		log "library/nginx:latest is in the registry (--force rebuilds)"
	fi
	((verify)) && verify_images
	CURRENT_STEP=""
	return 0
}

main "$@"
