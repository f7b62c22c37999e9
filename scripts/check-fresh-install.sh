#!/usr/bin/env bash
# Proves the README's quick start on a Debian 12 machine that has nothing
# installed: a new bookworm minbase root file system (debootstrap), the
# working tree copied in, and the README's two commands run inside it as the
# README writes them (read from its "Quick start" block), the first capped
# with --set train.max_steps=N. Prints the time of each phase; on a failure it
# names the phase and the command, shows the end of its log and exits 1.
#
# usage: sudo scripts/check-fresh-install.sh
#
# Phases: bootstrap (minbase root), refusal (setup.sh as a user who is
# neither root nor has sudo must fail in one line naming the packages),
# quick start (README line 1: packages, build, training), tests (README
# line 2: the whole suite).
#
# Reused between runs, and nothing else: the minbase tarball, the downloaded
# .deb files and ccache, all under CONVOY_FRESH_CACHE (default
# ~/.cache/convoy/fresh-install). The root itself is made anew each run and
# removed after (CONVOY_FRESH_KEEP=1 keeps it for a look).
#
#   CONVOY_FRESH_MAX_STEPS   the quick start's train.max_steps (default 200)
#   CONVOY_FRESH_MIRROR      Debian mirror (default http://deb.debian.org/debian)
#   CONVOY_FRESH_ROOT_PARENT where the root is made (default /var/tmp)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/debian-chroot.sh   # in_chroot

CACHE=${CONVOY_FRESH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/convoy/fresh-install}
MIRROR=${CONVOY_FRESH_MIRROR:-http://deb.debian.org/debian}
MAX_STEPS=${CONVOY_FRESH_MAX_STEPS:-200}
SUITE=bookworm

say() { echo "check-fresh-install: $*" >&2; }
[ "$(id -u)" -eq 0 ] || { say "needs root (debootstrap, chroot, mounts)"; exit 2; }

# The README's two quick-start commands: the first two lines of the fenced
# block after the "## Quick start" heading.
mapfile -t QUICK < <(awk '/^## Quick start/ {h=1; next} h && /^```/ {if (b) exit; b=1; next} b && NF' README.md)
if ((${#QUICK[@]} != 2)) || [[ ${QUICK[0]} != *"build/convoy launch"* ]]; then
  say "cannot read the two commands of README.md's Quick start block (got ${#QUICK[@]} lines)"
  exit 2
fi
START_CMD="${QUICK[0]} --set train.max_steps=$MAX_STEPS"
TEST_CMD=${QUICK[1]}

ROOT=""
LOGS=$(mktemp -d /tmp/convoy-fresh-logs.XXXXXX)
cleanup() {
  [ -n "$ROOT" ] && [ -d "$ROOT" ] || return 0
  # Whatever still runs inside the root (a test's leftover) is stopped first.
  local p
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/root" 2>/dev/null)" = "$ROOT" ] && kill -9 "${p#/proc/}" 2>/dev/null || true
  done
  findmnt -rn -o TARGET | awk -v d="$ROOT/" 'index($0, d) == 1 || $0 == substr(d, 1, length(d) - 1)' | sort -r |
    while read -r m; do
      umount -l "$m" 2>/dev/null || true
    done
  if [ "${CONVOY_FRESH_KEEP:-0}" = 1 ]; then
    say "kept the root at $ROOT"
  else
    rm -rf --one-file-system "$ROOT"
  fi
}
trap cleanup EXIT

TIMES=()
# phase NAME LOG COMMAND...: runs COMMAND with its output in LOGS/LOG (and on
# stderr, prefixed), records its time, and stops the check if it fails.
phase() {
  local name=$1 log=$LOGS/$2 t0 rc
  shift 2
  say "== $name"
  t0=$(date +%s)
  set +e
  "$@" 2>&1 | tee "$log" | sed -u "s/^/  [$name] /" >&2
  rc=${PIPESTATUS[0]}
  set -e
  local dt=$(($(date +%s) - t0))
  TIMES+=("$(printf '%-12s %5d s' "$name" "$dt")")
  if ((rc != 0)); then
    say "FAILED in phase '$name' (exit $rc after $dt s): $*"
    say "its last lines:"
    tail -n 25 "$log" | sed 's/^/  | /' >&2
    say "whole log: $log"
    exit 1
  fi
}

bootstrap() {
  mkdir -p "$CACHE/debs" "$CACHE/ccache"
  command -v debootstrap >/dev/null || {
    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap
  }
  local tarball=$CACHE/$SUITE-minbase.tgz
  if [ ! -f "$tarball" ]; then
    local scratch
    scratch=$(mktemp -d "$PARENT/convoy-minbase.XXXXXX")
    debootstrap --variant=minbase --make-tarball="$tarball.part" "$SUITE" "$scratch" "$MIRROR"
    rm -rf --one-file-system "$scratch"
    mv "$tarball.part" "$tarball"
  fi
  debootstrap --variant=minbase --unpack-tarball="$tarball" "$SUITE" "$ROOT" "$MIRROR"
  # The sources of a Debian 12 installation: the release, its updates and
  # security fixes.
  rm -f "$ROOT/etc/apt/sources.list"
  cat > "$ROOT/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${MIRROR%/debian}/debian-security
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  # The working tree as a clone would have it (tracked and untracked files
  # that git does not ignore), owned by root, readable by everyone.
  mkdir -p "$ROOT/src"
  git ls-files -z --cached --others --exclude-standard |
    tar --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -xf - -C "$ROOT/src"
  chmod -R a+rX "$ROOT/src"
  # The user of the refusal phase.
  chroot "$ROOT" useradd -m -u 4242 stranger
  du -sh "$ROOT" | sed 's/^/minbase root: /'
}

refusal() {
  local rc=0 out
  out=$(chroot "$ROOT" setpriv --reuid=4242 --regid=4242 --clear-groups \
        env -i HOME=/home/stranger PATH=/usr/bin:/bin LANG=C.UTF-8 bash -c 'cd /src && scripts/setup.sh' 2>&1) || rc=$?
  echo "$out"
  if ((rc == 0)); then echo "setup.sh succeeded for a user without root or sudo"; return 1; fi
  if [ "$(printf '%s\n' "$out" | wc -l)" -ne 1 ] || [[ $out != *"apt-get install"*libtorch-dev* ]]; then
    echo "expected one line naming the packages to install"
    return 1
  fi
}

PARENT=${CONVOY_FRESH_ROOT_PARENT:-/var/tmp}
ROOT=$(mktemp -d "$PARENT/convoy-fresh.XXXXXX")
chmod 755 "$ROOT"
say "root $ROOT, cache $CACHE, logs $LOGS"
say "quick start: $START_CMD"
say "tests:       $TEST_CMD"

# Inside the root only the downloaded packages and ccache are shared with
# earlier runs; /src is the copy made above (in_chroot binds it onto itself).
CHROOT_BINDS=("$CACHE/debs:/var/cache/apt/archives" "$CACHE/ccache:/root/.cache/ccache")
run_in_root() { (cd "$ROOT/src" && in_chroot "$ROOT" "$1"); }

phase bootstrap bootstrap.log bootstrap
phase refusal refusal.log refusal
phase "quick start" quick-start.log run_in_root "$START_CMD"
setup_line=$(grep -o 'setup: done in .*' "$LOGS/quick-start.log" | head -1 || true)
end_line=$(grep -ho '"event":"end"[^}]*' "$ROOT"/src/runs/*/metrics.jsonl 2>/dev/null | head -1 || true)
phase tests tests.log run_in_root "$TEST_CMD"

say "passed; phase times:"
printf '  %s\n' "${TIMES[@]}" >&2
[ -n "$setup_line" ] && echo "  (quick start: $setup_line, the rest training)" >&2
[ -n "$end_line" ] && echo "  (quick start's end event: {$end_line})" >&2
# scripts/test.sh ends with one line naming every skipped test and why.
skips=$(grep -E '^skipped: ' "$LOGS/tests.log" | tail -1 || true)
if [ -z "$skips" ]; then
  say "the suite's log has no line of skipped tests"
  exit 1
elif [ "$skips" = "skipped: none" ]; then
  say "nothing in the suite was skipped"
else
  say "$skips"
fi
exit 0
