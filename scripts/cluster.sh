#!/usr/bin/env bash
# An emulated cluster on this machine, so that DLM's memory servers can run on "other hosts":
#
#   scripts/cluster.sh up N [--rate RATE]   N hosts dlmh1..dlmhN (network namespaces), each on a
#                                           bridge with this host; prints the environment to use
#   scripts/cluster.sh down                 removes everything `up` made and ends what runs there
#   scripts/cluster.sh status               what is up
#
# Each host is a network namespace joined to the bridge dlmbr0 in this (the root) namespace by a
# veth pair; this host is 10.213.0.254 on the bridge, host K is 10.213.0.K. Open MPI starts its
# daemons there through scripts/cluster-agent instead of ssh, which also gives every process
# the host's own hostname (a UTS namespace), so that DLM and MPI see distinct machines. RATE
# (tc syntax: 1gbit, 500mbit, ...) limits each host's link in both directions.
#
# Names resolve everywhere: this namespace through a marked block in /etc/hosts, each emulated
# host through /etc/netns/dlmhK/hosts, which `ip netns exec` mounts over /etc/hosts there (that
# one also maps this host's name to its bridge address rather than to loopback).
#
# Root only. `up` first removes whatever an earlier (possibly crashed) cluster left.
set -euo pipefail

PREFIX=dlmh                 # host names and namespace names: dlmh1, dlmh2, ...
VETH=dlmv                   # root-side end of host K's link: dlmvK
BRIDGE=dlmbr0
NET=10.213.0                # a /24 that nothing else on this machine uses
GATEWAY=$NET.254            # this host's address on the bridge
MAX_HOSTS=200
HOSTS_BEGIN="# BEGIN dlm emulated cluster (scripts/cluster.sh; \`scripts/cluster.sh down\` removes this block)"
HOSTS_END="# END dlm emulated cluster"
SCRIPTS=$(cd "$(dirname "$0")" && pwd)
AGENT=$SCRIPTS/cluster-agent
LOCK=/run/dlm-cluster.lock

die() {
    echo "cluster.sh: $*" >&2
    exit 1
}

usage() {
    echo "usage: $0 up N [--rate RATE] | down | status" >&2
    exit 2
}

require_root() {
    [ "$(id -u)" -eq 0 ] || die "needs root (it creates network namespaces, links and /etc/hosts entries); run it with sudo"
    command -v ip >/dev/null || die "needs iproute2 (the ip command)"
}

# One up or down at a time.
lock() {
    exec 9>"$LOCK"
    flock 9
}

# The namespaces, root-side links and per-host files that belong to the cluster, whatever N was.
cluster_namespaces() {
    ip netns list 2>/dev/null | awk -v p="$PREFIX" '$1 ~ "^" p "[0-9]+$" { print $1 }'
}

cluster_links() {
    ip -o link show 2>/dev/null | awk -F': ' -v p="$VETH" '{ sub(/@.*/, "", $2) } $2 ~ "^" p "[0-9]+$" { print $2 }'
}

# Rewrites /etc/hosts in place (not by rename: /etc/hosts may be a bind mount) without the block
# between the marker lines BEGIN and END, then appends the lines given on stdin, if any, inside a
# new block.
write_hosts_block() {
    local begin=$1 end=$2 kept block
    kept=$(awk -v b="$begin" -v e="$end" '$0 == b { skip = 1; next } $0 == e { skip = 0; next } !skip' /etc/hosts)
    block=$(cat)
    {
        printf '%s\n' "$kept"
        if [ -n "$block" ]; then
            printf '%s\n%s\n%s\n' "$begin" "$block" "$end"
        fi
    } >/etc/hosts.dlm-cluster.tmp
    cat /etc/hosts.dlm-cluster.tmp >/etc/hosts
    rm -f /etc/hosts.dlm-cluster.tmp
}

# Limits what leaves DEV to RATE: `limit_egress RATE DEV [tc options such as -n NAMESPACE]`.
# htb picks its own burst for the rate (tbf would need one); the quantum only matters between
# classes (there is one) and is set to keep tc from warning.
limit_egress() {
    local rate=$1 dev=$2
    shift 2
    tc "$@" qdisc add dev "$dev" root handle 1: htb default 1
    tc "$@" class add dev "$dev" parent 1: classid 1:1 htb rate "$rate" quantum 60000
}

# What runs in namespace NS, as "name(count) ...".
namespace_processes() {
    ip netns pids "$1" | xargs -r ps -o comm= -p | sort | uniq -c | awk '{ printf "%s%s(%s)", s, $2, $1; s = " " }'
}

# The environment that `up` prints for Open MPI.
print_mpi_env() {
    cat <<EOF
# Open MPI reaches the hosts through the agent instead of ssh (mpirun --host and MPI_Comm_spawn):
export OMPI_MCA_plm_rsh_agent=$AGENT
export OMPI_MCA_plm_rsh_no_tree_spawn=1
# Every emulated host has this machine's cores: mpirun's default binding would pin a rank on
# each host to the same core (a remote server paged 40 times slower so).
export OMPI_MCA_hwloc_base_binding_policy=none
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
EOF
}

# Ends every process in a namespace: a namespace whose processes live on cannot really go
# (the kernel keeps it while they hold it), and they would keep running DLM servers.
kill_namespace_processes() {
    local ns=$1 pids tries=0
    while pids=$(ip netns pids "$ns" 2>/dev/null) && [ -n "$pids" ]; do
        # shellcheck disable=SC2086  # one pid per word
        kill -9 $pids 2>/dev/null || true
        tries=$((tries + 1))
        if [ "$tries" -gt 50 ]; then
            echo "cluster.sh: processes still in $ns after 5 s: $pids" >&2
            return 1
        fi
        sleep 0.1
    done
}

down() {
    local ns link status=0
    for ns in $(cluster_namespaces); do
        kill_namespace_processes "$ns" || status=1
        ip netns del "$ns" || status=1
        rm -rf "/etc/netns/$ns"
    done
    # Deleting a namespace deletes its veth end and so the pair; a link left from a half-made
    # `up` (created, never moved) goes here.
    for link in $(cluster_links); do
        ip link del "$link" 2>/dev/null || true
    done
    if ip link show "$BRIDGE" >/dev/null 2>&1; then
        ip link del "$BRIDGE" || status=1
    fi
    rmdir /etc/netns 2>/dev/null || true # only if nothing else uses it
    write_hosts_block "$HOSTS_BEGIN" "$HOSTS_END" </dev/null
    return "$status"
}

up() {
    local n=$1 rate=$2 k ns link local_name
    down || die "could not remove the previous cluster (see above)"
    # Namespaces need CAP_SYS_ADMIN even as root (a container may not give it): say so plainly.
    local err
    err=$(ip netns add "${PREFIX}1" 2>&1) || die "cannot create network namespaces here: $err"
    # From here on a failed step (set -e) leaves nothing half made behind.
    trap 'echo "cluster.sh: up failed; removing what it made" >&2; down || true' EXIT
    ip link add "$BRIDGE" type bridge
    ip addr add "$GATEWAY/24" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    local_name=$(hostname)
    for k in $(seq 1 "$n"); do
        ns=$PREFIX$k
        link=$VETH$k
        [ "$k" -eq 1 ] || ip netns add "$ns"
        ip link add "$link" type veth peer name eth0 netns "$ns"
        ip link set "$link" master "$BRIDGE"
        ip link set "$link" up
        ip -n "$ns" link set lo up
        ip -n "$ns" addr add "$NET.$k/24" dev eth0
        ip -n "$ns" link set eth0 up
        if [ -n "$rate" ]; then
            # Egress on each end: the root side shapes traffic to the host, the host's side
            # traffic from it.
            limit_egress "$rate" "$link"
            limit_egress "$rate" eth0 -n "$ns"
        fi
        mkdir -p "/etc/netns/$ns"
        {
            printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n'
            printf '%s\t%s\n' "$GATEWAY" "$local_name"
            for j in $(seq 1 "$n"); do printf '%s\t%s\n' "$NET.$j" "$PREFIX$j"; done
        } >"/etc/netns/$ns/hosts"
    done
    for k in $(seq 1 "$n"); do printf '%s\t%s\n' "$NET.$k" "$PREFIX$k"; done | write_hosts_block "$HOSTS_BEGIN" "$HOSTS_END"
    # Every name must resolve on every host before we say the cluster is up (and answer ping,
    # where ping is installed).
    for k in $(seq 1 "$n"); do
        getent hosts "$PREFIX$k" >/dev/null || die "$PREFIX$k does not resolve here"
        ip netns exec "$PREFIX$k" getent hosts "$local_name" "$PREFIX$n" >/dev/null \
            || die "$local_name or $PREFIX$n does not resolve on $PREFIX$k"
        if command -v ping >/dev/null; then
            ping -c 1 -W 2 "$PREFIX$k" >/dev/null || die "host $PREFIX$k does not answer ping"
        fi
    done
    trap - EXIT
    cat <<EOF
# emulated cluster up: $local_name (this host, $GATEWAY) and $(seq -f "$PREFIX%g" -s ' ' 1 "$n")${rate:+, links limited to $rate}
EOF
    print_mpi_env
    cat <<EOF
# A cut link (ip link set ${VETH}K down) ends an mpirun job within seconds with the Open MPI
# defaults that scripts/setup.sh and scripts/install.sh write (scripts/mpi-defaults.sh).
# e.g. a memfile with the line "${PREFIX}1 1G", or: mpirun --host $local_name,${PREFIX}1 ./prog
# remove it with: $SCRIPTS/cluster.sh down
EOF
}

status() {
    local ns rate any=0
    for ns in $(cluster_namespaces); do
        any=1
        printf '%s\t%s\t' "$ns" "$(ip -n "$ns" -br -4 addr show dev eth0 2>/dev/null | awk '{ print $3 }')"
        rate=$(tc -n "$ns" class show dev eth0 2>/dev/null | grep -o 'rate [^ ]*' | cut -d' ' -f2 || true)
        printf 'rate %s\t' "${rate:-unlimited}"
        printf 'link %s\t' "$(ip -n "$ns" -br link show dev eth0 2>/dev/null | awk '{ print $2 }')"
        printf 'processes: %s\n' "$(namespace_processes "$ns")"
    done
    [ "$any" -eq 1 ] || echo "no emulated cluster is up"
}

[ $# -ge 1 ] || usage
command=$1
shift
case $command in
up)
    [ $# -ge 1 ] || usage
    n=$1
    shift
    rate=
    while [ $# -gt 0 ]; do
        case $1 in
        --rate) [ $# -ge 2 ] || usage; rate=$2; shift 2 ;;
        --rate=*) rate=${1#--rate=}; shift ;;
        *) usage ;;
        esac
    done
    if ! [[ $n =~ ^[0-9]+$ ]] || [ "$n" -lt 1 ] || [ "$n" -gt "$MAX_HOSTS" ]; then
        die "N must be a number of hosts from 1 to $MAX_HOSTS, not '$n'"
    fi
    require_root
    [ -z "$rate" ] || command -v tc >/dev/null || die "--rate needs tc (iproute2)"
    lock
    up "$n" "$rate"
    ;;
down)
    [ $# -eq 0 ] || usage
    require_root
    lock
    down
    ;;
status)
    [ $# -eq 0 ] || usage
    require_root
    status
    ;;
*) usage ;;
esac
