# Sourced by the scripts that build or test inside a Debian chroot
# (check-torch2.sh, check-cuda-build.sh, check-fresh-install.sh,
# make-deps-bundle.sh, check-deps-bundle.sh): chroots made once with
# debootstrap and cached outside the clone (CONVOY_CHROOT_CACHE, default
# ~/.cache/convoy), with packages added on demand; and running a command
# inside any chroot with the repository bind-mounted at /src. Needs root.
#
#   debian_chroot SUITE NAME [PACKAGE...] -> prints the chroot's path; creates
#                                      it (the suite with its updates and
#                                      security fixes; binary and source
#                                      packages) or adds the packages it lacks
#   trixie_chroot NAME [PACKAGE...]   debian_chroot trixie NAME ...
#   chroot_has DIR PACKAGE          whether PACKAGE is installed there (held
#                                      or not)
#   in_chroot DIR COMMAND           runs COMMAND (a bash -c string) in DIR with
#                                      /proc, /sys, /dev, a fresh /dev/shm and
#                                      /src mounted, unmounting after; each
#                                      HOST:TARGET in CHROOT_BINDS (an array) is
#                                      bind-mounted too

CHROOT_CACHE=${CONVOY_CHROOT_CACHE:-${CONVOY_TRIXIE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/convoy}}
CHROOT_MIRROR=${CONVOY_CHROOT_MIRROR:-${CONVOY_TRIXIE_MIRROR:-http://deb.debian.org/debian}}

debian_chroot() {
  local suite=$1 name=$2
  shift 2
  local dir=$CHROOT_CACHE/$name
  if ! command -v debootstrap >/dev/null; then
    echo "debian-chroot: installing debootstrap" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap >&2
  fi
  if [ ! -f "$dir/.convoy-bootstrapped" ]; then
    echo "debian-chroot: debootstrap $suite into $dir (once; cached)" >&2
    rm -rf "$dir"
    mkdir -p "$dir"
    debootstrap --variant=minbase --components=main,contrib,non-free "$suite" "$dir" "$CHROOT_MIRROR" >&2
    # The release, its updates and security fixes; binaries and sources.
    rm -f "$dir/etc/apt/sources.list"
    printf '%s\n' \
      "Types: deb deb-src" "URIs: $CHROOT_MIRROR" "Suites: $suite $suite-updates" \
      "Components: main contrib non-free" "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" "" \
      "Types: deb deb-src" "URIs: ${CHROOT_MIRROR%/debian}/debian-security" "Suites: $suite-security" \
      "Components: main contrib non-free" "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" \
      > "$dir/etc/apt/sources.list.d/debian.sources"
    chroot "$dir" apt-get update >&2
    touch "$dir/.convoy-bootstrapped"
  fi
  # Only what is missing, so a warm cache costs a dpkg query.
  local missing=()
  for p in "$@"; do
    chroot_has "$dir" "$p" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "debian-chroot: installing ${missing[*]} into $name" >&2
    chroot "$dir" apt-get update >&2
    chroot "$dir" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2
  fi
  echo "$dir"
}

trixie_chroot() {
  debian_chroot trixie "$@"
}

chroot_has() {
  # "install ok installed", or "hold ok installed" once apt-mark held it.
  chroot "$1" dpkg-query -W -f='${Status}' "$2" 2>/dev/null | grep -q "ok installed"
}

in_chroot() {
  local dir=$1 cmd=$2 src
  [ -d "$dir/usr" ] || { echo "in_chroot: $dir is not a chroot" >&2; return 2; }
  src=$(pwd)
  _mount() {  # _mount SOURCE TARGET [mount options...]
    mkdir -p "$dir$2"
    mount "${@:3}" "$1" "$dir$2"
  }
  _umount_all() {
    # Everything mounted under the chroot, deepest first: ours, and what the
    # command mounted inside (ip netns add binds run/netns).
    findmnt -rn -o TARGET | awk -v d="$dir/" 'index($0, d) == 1' | sort -r | while read -r m; do
      umount -l "$m" 2>/dev/null || true
    done
    umount -l "$dir" 2>/dev/null || true
  }
  trap _umount_all EXIT
  # The root bound onto itself, so that / is a mount point inside: `ip
  # netns exec` (the multi-host tests) makes / a slave mount, which a plain
  # chroot directory refuses.
  mount --bind "$dir" "$dir"
  _mount proc /proc -t proc
  _mount /sys /sys --rbind
  _mount /dev /dev --rbind
  _mount tmpfs /dev/shm -t tmpfs
  _mount "$src" /src --bind
  local bind
  for bind in "${CHROOT_BINDS[@]}"; do
    mkdir -p "${bind%%:*}"
    _mount "${bind%%:*}" "${bind#*:}" --bind
  done
  cp /etc/resolv.conf "$dir/etc/resolv.conf" 2>/dev/null || true
  local rc=0
  chroot "$dir" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin TERM=dumb LANG=C.UTF-8 \
    CI="${CI:-}" bash -c "cd /src && $cmd" || rc=$?
  _umount_all
  trap - EXIT
  return $rc
}
