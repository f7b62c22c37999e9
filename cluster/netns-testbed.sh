#!/usr/bin/env bash
# Several "hosts" on one machine, for testing multi-host runs for real: each
# host is a network namespace with its own loopback and one cable (a veth
# pair) into a bridge, with a private address 10.77.0.<i+1>/24 that exists
# only inside it (the bridge itself is 10.77.0.254, so mpirun in the root
# namespace can reach its daemons). Processes in the hosts share the file
# system, /dev/shm and PIDs with everything else; only the network is
# theirs, which is what matters to Convoy's rendezvous, Gloo and Open MPI.
# Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) and iproute2.
#
#   cluster/netns-testbed.sh up N            create hosts h0 .. h<N-1>
#   cluster/netns-testbed.sh down            remove every host, veth and the bridge
#   cluster/netns-testbed.sh exec HOST CMD…  run CMD on HOST (h0, h1, …)
#   cluster/netns-testbed.sh agent HOST CMD  what mpirun runs instead of ssh:
#       mpirun --mca plm_rsh_agent "cluster/netns-testbed.sh agent" -H h0:2,h1:2 …
#   cluster/netns-testbed.sh link HOST down|up   cut or plug HOST's cable
#   cluster/netns-testbed.sh addr HOST       print HOST's address
#
# CONVOY_TESTBED_PREFIX (default cvtb) prefixes every name, so several test
# beds can coexist; `down` removes only its own prefix's.
set -euo pipefail
PREFIX=${CONVOY_TESTBED_PREFIX:-cvtb}
SUBNET=10.77.0
BRIDGE=$PREFIX-br

ns() { echo "$PREFIX-$1"; }          # h0 -> cvtb-h0
# Configures HOST's network: nsenter rather than `ip -n`, which also makes a
# mount namespace. Commands run on a host go through `ip netns exec`, which
# remounts /sys for the namespace (Open MPI's daemons need that); it cannot
# inside a chroot, so the test bed does not run there.
on() { local h=$1; shift; nsenter --net="/run/netns/$(ns "$h")" "$@"; }
index() { echo "${1#h}"; }           # h0 -> 0
addr() { echo "$SUBNET.$(($(index "$1") + 1))"; }

up() {
  local n=$1
  [ "${#BRIDGE}" -le 15 ] || { echo "netns-testbed: prefix '$PREFIX' too long" >&2; exit 2; }
  if ip -o addr show | grep -q " $SUBNET.254/"; then
    echo "netns-testbed: $SUBNET.254 is taken (another test bed is up: remove it with its" \
         "CONVOY_TESTBED_PREFIX and 'down')" >&2
    exit 1
  fi
  trap 'down' ERR   # half a test bed is removed, not left behind
  ip link add "$BRIDGE" type bridge
  ip addr add "$SUBNET.254/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  for ((i = 0; i < n; i++)); do
    local h=h$i veth=$PREFIX-v$i
    ip netns add "$(ns $h)"
    ip link add "$veth" type veth peer name "$veth-p"
    ip link set "$veth" master "$BRIDGE" up
    ip link set "$veth-p" netns "$(ns $h)"
    on $h ip link set "$veth-p" name eth0
    on $h ip addr add "$(addr $h)/24" dev eth0
    on $h ip link set eth0 up
    on $h ip link set lo up
    echo "$h $(addr $h)"
  done
}

down() {
  # Whatever state an earlier run left: remove all of this prefix's.
  local n
  for n in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$PREFIX-h[0-9]*$" || true); do
    ip netns pids "$n" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$n" || true
  done
  for n in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' | grep "^$PREFIX-v[0-9]*$" || true); do
    ip link del "$n" 2>/dev/null || true
  done
  ip link del "$BRIDGE" 2>/dev/null || true
  rm -rf "${TMPDIR:-/tmp}/$PREFIX"-h*.tmp
}

cmd=${1:-}
shift || true
case "$cmd" in
  up) down; up "${1:-2}" ;;
  down) down ;;
  exec) h=$1; shift; exec ip netns exec "$(ns "$h")" "$@" ;;
  # Open MPI hands its agent "HOST command line…" meant for a remote shell.
  # Its session directory ($TMPDIR/ompi.<host name>…) would be the same on
  # every host (they share /tmp and a host name), so each gets a TMPDIR.
  agent)
    h=$1; shift
    tmp=${TMPDIR:-/tmp}/$PREFIX-$h.tmp
    mkdir -p "$tmp"
    exec ip netns exec "$(ns "$h")" env TMPDIR="$tmp" /bin/sh -c "$*" ;;
  # The bridge end: packets vanish silently, as with a pulled cable.
  link) ip link set "$PREFIX-v$(index "$1")" "$2" ;;
  addr) addr "$1" ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
esac
