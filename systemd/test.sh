#!/usr/bin/env bash
# Static checks of skiff's shell scripts and the Vagrant lab (no VM, no root needed):
#   1. shellcheck on every shell script of the repository (*.sh and files with a shell shebang,
#      outside target/ and .git/);
#   2. `vagrant validate --ignore-provider` of vagrant/Vagrantfile with 0, 2 (default) and 5 agents.
#
#   systemd/test.sh            exit 0 when everything passes
# Needs shellcheck and vagrant (apt-get install shellcheck vagrant); a missing tool is a failure
# unless SKIFF_TEST_ALLOW_MISSING=1 (then that check is skipped with a note).
# SKIFF_SHELLCHECK_SEVERITY (default style) is passed to shellcheck -S.
set -Eeuo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FAILED=0

say() { printf 'systemd/test.sh: %s\n' "$*" >&2; }
fail() {
	say "FAIL: $*"
	FAILED=1
}

need() {
	command -v "$1" >/dev/null && return 0
	if [[ ${SKIFF_TEST_ALLOW_MISSING:-0} == 1 ]]; then
		say "SKIP: $1 is not installed"
	else
		fail "$1 is not installed (apt-get install $2)"
	fi
	return 1
}

shell_scripts() {
	local f
	while IFS= read -r -d '' f; do
		if [[ $f == *.sh ]] || head -n 1 "$f" 2>/dev/null | grep -qE '^#!.*(/|env )(ba|da)?sh( |$)'; then
			printf '%s\n' "${f#./}"
		fi
	done < <(cd "$REPO" && find . \( -path ./target -o -path ./.git -o -path '*/.vagrant' -o -path '*/node_modules' \) -prune \
		-o -type f \( -name '*.sh' -o -perm -u+x \) -print0)
}

check_shell() {
	local -a files
	need shellcheck shellcheck || return 0
	mapfile -t files < <(shell_scripts | sort)
	((${#files[@]})) || {
		fail "no shell scripts found under $REPO"
		return 0
	}
	if (cd "$REPO" && shellcheck -x -S "${SKIFF_SHELLCHECK_SEVERITY:-style}" "${files[@]}"); then
		say "ok: shellcheck (${#files[@]} scripts)"
	else
		fail "shellcheck"
	fi
}

check_vagrant() {
	local home n out
	need vagrant vagrant || return 0
	home=$(mktemp -d)
	for n in 0 2 5; do
		if out=$(cd "$REPO/vagrant" && VAGRANT_HOME=$home/home VAGRANT_DOTFILE_PATH=$home/dot \
			VAGRANT_CHECKPOINT_DISABLE=1 SKIFF_AGENTS=$n vagrant validate --ignore-provider 2>&1); then
			say "ok: vagrant validate --ignore-provider (SKIFF_AGENTS=$n)"
		else
			printf '%s\n' "$out" >&2
			fail "vagrant validate --ignore-provider (SKIFF_AGENTS=$n)"
		fi
	done
	rm -rf "$home"
}

check_shell
check_vagrant
((FAILED == 0)) && say "all checks passed"
exit "$FAILED"
