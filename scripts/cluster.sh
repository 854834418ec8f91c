#!/usr/bin/env bash
# An emulated cluster, or a WAN of emulated clusters, on this machine, so that DLM's memory
# servers can run on "other hosts":
#
#   scripts/cluster.sh up N [--rate RATE]   N hosts dlmh1..dlmhN (network namespaces), each on a
#                                           bridge with this host; prints the environment to use
#   scripts/cluster.sh down                 removes everything `up` made and ends what runs there
#   scripts/cluster.sh status               what is up
#   scripts/cluster.sh wan up SPEC [SPEC...] [--wan-rate RATE]
#                                           one cluster per SPEC, routed through this host;
#                                           prints the environment to use and the hosts
#   scripts/cluster.sh wan load HOST [--memory SIZE] [--cpu N]
#                                           takes SIZE of HOST's memory, adds N to its load
#   scripts/cluster.sh wan unload HOST      ends what `wan load` started on HOST
#   scripts/cluster.sh wan down             removes everything `wan up` made and ends what runs there
#   scripts/cluster.sh wan status           each WAN host's cluster, role, address, memory, load
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
# The WAN: SPEC is COMPUTExCMEM+SERVERSxSMEM (e.g. 2x512M+3x1G; either count may be 0). Cluster K
# has a manager dlmwK-m (512M, 10.214.K.1), compute nodes dlmwK-n1.. (CMEM each, 10.214.K.11..)
# and memory nodes dlmwK-s1.. (SMEM each, 10.214.K.101..) on the bridge dlmwbrK, where this host
# is 10.214.K.254. This host routes between the clusters; a WAN host has a route to 10.214.0.0/16
# through it and no default route (one breaks UCX's choice of devices here). RATE limits what
# enters and what leaves each cluster (one limit per cluster and direction, shared by its hosts
# like an uplink, also for traffic with this host); traffic inside a cluster is not shaped. Cut a
# cluster off with `ip link set dlmwbrK down`, one host with `ip link set dlmwvK-n1 down`. Names
# resolve as in the cluster, through a block of the WAN's own in /etc/hosts.
# Each WAN host has a memory cgroup limited to its memory, and cpu and cpuacct cgroups
# (/sys/fs/cgroup/{memory,cpu,cpuacct}/dlm/HOST, cgroup v1); what the agent starts there runs in
# them and reads, through lxcfs (one daemon, run by `wan up`), its host's own /proc/meminfo and
# /proc/loadavg. `wan load` starts there a python3 process that writes SIZE bytes and holds them,
# and N busy loops at nice 19, capped together at 5% of a core: they count in the host's load
# average without taking the machine's CPUs. The WAN's names and addresses are not the
# cluster's, so both can be up at once.
#
# Root only. `up` first removes whatever an earlier (possibly crashed) cluster left, `wan up`
# what an earlier WAN left.
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

WAN_PREFIX=dlmw             # host and namespace names: dlmwK-m, dlmwK-nI, dlmwK-sI
WAN_VETH=dlmwv              # root-side end of a host's link: dlmwvK-m, dlmwvK-nI, dlmwvK-sI
WAN_BRIDGE=dlmwbr           # cluster K's bridge: dlmwbrK
WAN_IFB=dlmwifb             # dlmwifbK: what leaves cluster K, redirected there to be shaped
WAN_NET=10.214              # cluster K is 10.214.K.0/24; another range than the cluster's
WAN_MAX_CLUSTERS=50
WAN_MAX_COMPUTE=89          # compute node I is .10+I, memory node I .100+I, .254 this host
WAN_MAX_SERVERS=153
WAN_MANAGER_MEMORY=512M
SIZE_RE='[0-9]+[KMGkmg]?'   # what memory.limit_in_bytes takes (and `wan load --memory`)
WAN_SPEC_RE="^([0-9]+)x($SIZE_RE)\\+([0-9]+)x($SIZE_RE)\$"
WAN_HOSTS_BEGIN="# BEGIN dlm emulated WAN (scripts/cluster.sh wan; \`scripts/cluster.sh wan down\` removes this block)"
WAN_HOSTS_END="# END dlm emulated WAN"
CGROUPS=/sys/fs/cgroup      # cgroup v1: one hierarchy per controller
CONTROLLERS="memory cpu cpuacct"
WAN_CGROUP=dlm              # host H's cgroups: $CGROUPS/CONTROLLER/dlm/H (cluster-agent knows too)
LXCFS_DIR=/run/dlm-wan-lxcfs # (cluster-agent knows it too)
LXCFS_PIDFILE=/run/dlm-wan-lxcfs.pid
WAN_RUN=/run/dlm-wan        # ip_forward as `wan up` found it, lxcfs's and the loads' logs
BURNER_QUOTA_US=5000        # CPU time per 100 ms period for all burners of a host together
MAX_BURNERS=64
LOCK=/run/dlm-cluster.lock  # the cluster and the WAN: both rewrite /etc/hosts

die() {
    echo "cluster.sh: $*" >&2
    exit 1
}

usage() {
    cat >&2 <<EOF
usage: $0 up N [--rate RATE] | down | status
       $0 wan up SPEC [SPEC...] [--wan-rate RATE] | wan down | wan status
       $0 wan load HOST [--memory SIZE] [--cpu N] | wan unload HOST
EOF
    exit 2
}

require_root() {
    [ "$(id -u)" -eq 0 ] || die "needs root (it creates network namespaces, links and /etc/hosts entries); run it with sudo"
    command -v ip >/dev/null || die "needs iproute2 (the ip command)"
}

# One up, down, load or unload at a time, of the cluster and the WAN alike.
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
# new block. (The cluster and the WAN have blocks of their own, so that both can be up.)
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

# The environment that `up` and `wan up` print for Open MPI.
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

# ---- The emulated WAN ---------------------------------------------------------------------------

require_wan_support() {
    local c
    for c in $CONTROLLERS; do
        [ -e "$CGROUPS/$c/cgroup.procs" ] \
            || die "wan needs cgroup v1's memory, cpu and cpuacct controllers at $CGROUPS/{memory,cpu,cpuacct} (no $CGROUPS/$c here)"
    done
    command -v lxcfs >/dev/null || die "wan needs lxcfs (apt-get install lxcfs; scripts/setup.sh installs it)"
    [ -c /dev/fuse ] || die "wan needs FUSE (/dev/fuse) for lxcfs"
}

# The WAN's namespaces (= host names), in cluster and role order: manager, compute, memory nodes.
wan_namespaces() {
    ip netns list 2>/dev/null | awk -v p="$WAN_PREFIX" '$1 ~ "^" p "[0-9]+-(m|[ns][0-9]+)$" { print $1 }' | sort -V
}

# The WAN's links in this namespace: host links' root-side ends, bridges and ifb devices.
wan_links() {
    ip -o link show 2>/dev/null | awk -F': ' -v p="$WAN_PREFIX" '{ sub(/@.*/, "", $2) }
        $2 ~ "^" p "(v[0-9]+-(m|[ns][0-9]+)|br[0-9]+|ifb[0-9]+)$" { print $2 }'
}

cluster_of() {
    local k=${1#"$WAN_PREFIX"}
    echo "${k%%-*}"
}

role_of() {
    case ${1#*-} in
    m) echo manager ;;
    n*) echo compute ;;
    s*) echo memory ;;
    esac
}

# A cgroup of the WAN: `cgroup_dir CONTROLLER HOST[/CHILD]`.
cgroup_dir() {
    printf '%s/%s/%s/%s\n' "$CGROUPS" "$1" "$WAN_CGROUP" "$2"
}

# The WAN's cgroups below the parent, deepest first (the order rmdir needs).
wan_cgroup_dirs() {
    local c
    for c in $CONTROLLERS; do
        [ ! -d "$CGROUPS/$c/$WAN_CGROUP" ] || find "$CGROUPS/$c/$WAN_CGROUP" -mindepth 1 -depth -type d
    done
}

# Moves this (sub)shell into the WAN cgroups HOST[/CHILD] of every controller.
join_cgroups() {
    local c
    for c in $CONTROLLERS; do
        echo "$BASHPID" >"$(cgroup_dir "$c" "$1")/cgroup.procs"
    done
}

# Ends the processes in cgroup DIR and removes it: the kernel keeps a cgroup that has tasks, and
# they would go on holding a host's memory. Only the WAN puts processes there.
remove_cgroup() {
    local dir=$1 pids tries=0
    [ -d "$dir" ] || return 0
    while pids=$(cat "$dir/cgroup.procs" 2>/dev/null) && [ -n "$pids" ]; do
        # shellcheck disable=SC2086  # one pid per word
        kill -9 $pids 2>/dev/null || true
        tries=$((tries + 1))
        if [ "$tries" -gt 50 ]; then
            echo "cluster.sh: processes still in $dir after 5 s: $pids" >&2
            return 1
        fi
        sleep 0.1
    done
    rmdir "$dir"
}

# The parent of the hosts' cgroups. CPU cgroups weigh each group against its siblings whatever
# its size, so at the default weight all N WAN hosts together would get what one process outside
# them gets: they weigh as N processes instead.
make_wan_cgroups() {
    local hosts=$1 c
    for c in $CONTROLLERS; do
        mkdir -p "$CGROUPS/$c/$WAN_CGROUP"
    done
    echo $((1024 * hosts)) >"$CGROUPS/cpu/$WAN_CGROUP/cpu.shares"
}

# HOST's cgroups: memory limited to MEMORY (and no swap beyond it: the machine has none), and
# cpu and cpuacct, where lxcfs finds the processes whose states make the host's load average.
make_host_cgroups() {
    local host=$1 memory=$2 c dir
    for c in $CONTROLLERS; do
        mkdir "$(cgroup_dir "$c" "$host")"
    done
    dir=$(cgroup_dir memory "$host")
    echo "$memory" >"$dir/memory.limit_in_bytes"
    [ ! -e "$dir/memory.memsw.limit_in_bytes" ] || echo "$memory" >"$dir/memory.memsw.limit_in_bytes"
}

# lxcfs serves each reader the meminfo and loadavg of the reader's own cgroups; -l adds the
# load average, which it computes for every cgroup it has been asked about, every 5 s, as the
# kernel does. One daemon for the WAN, forked off into a session of its own (it outlives this
# script, and bash reports no job of it when it is killed) and without the lock's descriptor (it
# would hold the lock as long as it runs).
start_lxcfs() {
    local tries=0
    mkdir -p "$LXCFS_DIR"
    setsid -f lxcfs -f -l --pidfile "$LXCFS_PIDFILE" "$LXCFS_DIR" </dev/null >"$WAN_RUN/lxcfs.log" 2>&1 9>&-
    until [ -e "$LXCFS_DIR/proc/meminfo" ] && [ -e "$LXCFS_DIR/proc/loadavg" ]; do
        tries=$((tries + 1))
        # (setsid execs lxcfs only after forking: give it a moment before looking for it.)
        [ "$tries" -lt 5 ] || lxcfs_pids >/dev/null || die "lxcfs exited: $(cat "$WAN_RUN/lxcfs.log")"
        [ "$tries" -le 100 ] || die "lxcfs did not mount $LXCFS_DIR within 10 s: $(cat "$WAN_RUN/lxcfs.log")"
        sleep 0.1
    done
}

# The WAN's lxcfs daemon, if it runs.
lxcfs_pids() {
    pgrep -f "^lxcfs .* $LXCFS_DIR\$"
}

# Whether a process that `ps OPTIONS` selects lives: a zombie is dead, only not yet reaped (by
# whoever inherited it, when it does).
alive() {
    ps -o stat= "$@" | awk '$1 !~ /^Z/ { found = 1 } END { exit !found }'
}

stop_lxcfs() {
    local pids tries=0
    # Unmounted first (nothing uses it once the hosts are gone; a daemon that died left it
    # behind), the daemon has nothing left to do: killed, rather than waiting up to 5 s for its
    # load average thread to wake up and end as SIGTERM would.
    if awk -v d="$LXCFS_DIR" '$2 == d { found = 1 } END { exit !found }' /proc/mounts; then
        umount "$LXCFS_DIR" 2>/dev/null || umount -l "$LXCFS_DIR"
    fi
    if pids=$(lxcfs_pids); then
        # shellcheck disable=SC2086  # one pid per word
        kill -9 $pids 2>/dev/null || true
        # shellcheck disable=SC2086
        while alive -p "$(echo $pids | tr ' ' ,)"; do
            tries=$((tries + 1))
            [ "$tries" -le 50 ] || { echo "cluster.sh: lxcfs ($pids) still runs after 5 s" >&2; return 1; }
            sleep 0.1
        done
    fi
    rm -f "$LXCFS_PIDFILE"
    [ ! -d "$LXCFS_DIR" ] || rmdir "$LXCFS_DIR"
    # lxcfs leaves the mount points of its private namespace in /run/lxcfs; unless another lxcfs
    # uses them, they go too.
    alive -C lxcfs || rmdir /run/lxcfs/controllers /run/lxcfs/root /run/lxcfs 2>/dev/null || true
}

# The WAN hosts route through this host, so it forwards while the WAN is up.
enable_forwarding() {
    [ -e "$WAN_RUN/ip_forward" ] || cat /proc/sys/net/ipv4/ip_forward >"$WAN_RUN/ip_forward"
    echo 1 >/proc/sys/net/ipv4/ip_forward
}

restore_forwarding() {
    if [ -e "$WAN_RUN/ip_forward" ]; then
        cat "$WAN_RUN/ip_forward" >/proc/sys/net/ipv4/ip_forward
    fi
}

# Host HOST of cluster K at ADDRESS with MEMORY: a namespace with its end of a veth pair on the
# cluster's bridge, a route to the other clusters through this host, and its cgroups. Appends
# the host's /etc/hosts line to wan_hosts.
make_wan_host() {
    local k=$1 host=$2 address=$3 memory=$4
    local link=$WAN_VETH${host#"$WAN_PREFIX"}
    ip netns add "$host"
    ip link add "$link" type veth peer name eth0 netns "$host"
    ip link set "$link" master "$WAN_BRIDGE$k"
    ip link set "$link" up
    ip -n "$host" link set lo up
    ip -n "$host" addr add "$address/24" dev eth0
    ip -n "$host" link set eth0 up
    ip -n "$host" route add "$WAN_NET.0.0/16" via "$WAN_NET.$k.254"
    make_host_cgroups "$host" "$memory"
    # cluster-agent's mark of a WAN host: it can see it from inside any host (/run is shared).
    mkdir -p "$WAN_RUN/hosts" && : >"$WAN_RUN/hosts/$host"
    wan_hosts+=("$address	$host")
}

# Limits what enters and what leaves cluster K to RATE, and nothing inside it. The bridge device
# itself carries only what is routed, to this host or to another cluster: frames between the
# cluster's hosts go from port to port past it. So its egress is all that enters the cluster,
# and its ingress all that leaves; ingress has no queue to shape, so it is redirected to an ifb
# device and shaped on the way out of that.
shape_cluster() {
    local k=$1 rate=$2
    local bridge=$WAN_BRIDGE$k ifb=$WAN_IFB$k
    limit_egress "$rate" "$bridge"
    ip link add "$ifb" type ifb
    ip link set "$ifb" up
    limit_egress "$rate" "$ifb"
    tc qdisc add dev "$bridge" handle ffff: ingress
    tc filter add dev "$bridge" parent ffff: protocol all u32 match u32 0 0 action mirred egress redirect dev "$ifb"
}

# Cluster K from its spec's counts and sizes: bridge, hosts, shaping.
make_cluster() {
    local k=$1 compute=$2 cmem=$3 servers=$4 smem=$5 rate=$6 i
    ip link add "$WAN_BRIDGE$k" type bridge
    ip addr add "$WAN_NET.$k.254/24" dev "$WAN_BRIDGE$k"
    ip link set "$WAN_BRIDGE$k" up
    make_wan_host "$k" "$WAN_PREFIX$k-m" "$WAN_NET.$k.1" "$WAN_MANAGER_MEMORY"
    for i in $(seq 1 "$compute"); do
        make_wan_host "$k" "$WAN_PREFIX$k-n$i" "$WAN_NET.$k.$((10 + i))" "$cmem"
    done
    for i in $(seq 1 "$servers"); do
        make_wan_host "$k" "$WAN_PREFIX$k-s$i" "$WAN_NET.$k.$((100 + i))" "$smem"
    done
    [ -z "$rate" ] || shape_cluster "$k" "$rate"
}

# Every WAN host resolves every WAN host's name, and this host's name to the address this host
# has on its own cluster's bridge; this namespace resolves the WAN hosts through its own block.
write_wan_hosts_files() {
    local local_name=$1 host
    for host in $(wan_namespaces); do
        mkdir -p "/etc/netns/$host"
        {
            printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n'
            printf '%s\t%s\n' "$WAN_NET.$(cluster_of "$host").254" "$local_name"
            printf '%s\n' "${wan_hosts[@]}"
        } >"/etc/netns/$host/hosts"
    done
    printf '%s\n' "${wan_hosts[@]}" | write_hosts_block "$WAN_HOSTS_BEGIN" "$WAN_HOSTS_END"
}

# Before saying the WAN is up: every name resolves on every host, every host answers ping (where
# ping is installed), and a process started on a host through the agent sees the host's memory.
check_wan() {
    local local_name=$1 host last limit total
    last=$(wan_namespaces | tail -n 1)
    for host in $(wan_namespaces); do
        getent hosts "$host" >/dev/null || die "$host does not resolve here"
        ip netns exec "$host" getent hosts "$local_name" "$last" >/dev/null \
            || die "$local_name or $last does not resolve on $host"
        if command -v ping >/dev/null; then
            ping -c 1 -W 2 "$host" >/dev/null || die "host $host does not answer ping"
        fi
        limit=$(cat "$(cgroup_dir memory "$host")/memory.limit_in_bytes")
        total=$("$AGENT" "$host" "awk '/^MemTotal:/ { print \$2 }' /proc/meminfo") \
            || die "the agent cannot run a command on $host"
        if ! [[ $total =~ ^[0-9]+$ ]] || [ $((total * 1024)) -ne "$limit" ]; then
            die "$host sees MemTotal ${total:-(none)} kB instead of its $limit bytes (lxcfs: $(cat "$WAN_RUN/lxcfs.log"))"
        fi
    done
}

# 536870912 -> 512M, 1073741824 -> 1G (the largest unit that divides it).
human_size() {
    local bytes=$1 unit bits
    for unit in G:30 M:20 K:10; do
        bits=${unit#*:}
        if [ "$bytes" -ge $((1 << bits)) ] && [ $((bytes % (1 << bits))) -eq 0 ]; then
            echo "$((bytes >> bits))${unit%:*}"
            return
        fi
    done
    echo "$bytes"
}

# 200M -> 209715200.
to_bytes() {
    local n=${1%[KMGkmg]}
    case ${1#"$n"} in
    [Kk]) echo $((n << 10)) ;;
    [Mm]) echo $((n << 20)) ;;
    [Gg]) echo $((n << 30)) ;;
    *) echo "$n" ;;
    esac
}

# The hosts of cluster K with ROLE, as "name name ...".
hosts_of() {
    wan_namespaces | while read -r host; do
        [ "$(cluster_of "$host")" != "$1" ] || [ "$(role_of "$host")" != "$2" ] || printf '%s ' "$host"
    done
}

# What `wan up` prints: the clusters with their hosts by role, then the environment.
print_wan() {
    local rate=$1 clusters=$2 k role hosts memory local_name
    local_name=$(hostname)
    local plural=s
    [ "$clusters" -ne 1 ] || plural=''
    echo "# emulated WAN up: $clusters cluster$plural, routed through $local_name (this host)${rate:+; what enters or leaves a cluster limited to $rate each way, inside a cluster unshaped}"
    for k in $(seq 1 "$clusters"); do
        echo "# cluster $k: $WAN_NET.$k.0/24, $local_name is $WAN_NET.$k.254 there"
        for role in manager compute memory; do
            read -r -a hosts <<<"$(hosts_of "$k" "$role")"
            if [ ${#hosts[@]} -eq 0 ]; then
                printf '#   %-8s none\n' "$role"
                continue
            fi
            memory=$(human_size "$(cat "$(cgroup_dir memory "${hosts[0]}")/memory.limit_in_bytes")")
            [ ${#hosts[@]} -eq 1 ] || memory="$memory each"
            printf '#   %-8s %s (%s)\n' "$role" "${hosts[*]}" "$memory"
        done
    done
    print_mpi_env
    cat <<EOF
# What the agent starts on a host sees that host's memory and load (/proc/meminfo, /proc/loadavg
# through lxcfs). Load a host with: $SCRIPTS/cluster.sh wan load HOST --memory 200M --cpu 2
# remove it with: $SCRIPTS/cluster.sh wan down
EOF
}

wan_down() {
    local ns dir link c status=0
    for ns in $(wan_namespaces); do
        kill_namespace_processes "$ns" || status=1
    done
    for dir in $(wan_cgroup_dirs); do
        remove_cgroup "$dir" || status=1
    done
    for c in $CONTROLLERS; do
        [ ! -d "$CGROUPS/$c/$WAN_CGROUP" ] || rmdir "$CGROUPS/$c/$WAN_CGROUP" || status=1
    done
    for ns in $(wan_namespaces); do
        ip netns del "$ns" || status=1
        rm -rf "/etc/netns/$ns"
    done
    # Deleting a namespace deletes its veth pair; bridges, ifbs and a half-made host's link go here.
    for link in $(wan_links); do
        ip link del "$link" 2>/dev/null || true
    done
    rmdir /etc/netns 2>/dev/null || true # only if nothing else uses it
    stop_lxcfs || status=1
    restore_forwarding
    write_hosts_block "$WAN_HOSTS_BEGIN" "$WAN_HOSTS_END" </dev/null
    rm -rf "$WAN_RUN"
    return "$status"
}

# `wan_up RATE SPEC...` (the specs checked already).
wan_up() {
    local rate=$1 k=0 spec count=0 err local_name
    shift
    wan_down || die "could not remove the previous WAN (see above)"
    # Namespaces need CAP_SYS_ADMIN even as root (a container may not give it): say so plainly.
    err=$(ip netns add "${WAN_PREFIX}probe" 2>&1) || die "cannot create network namespaces here: $err"
    ip netns del "${WAN_PREFIX}probe"
    # From here on a failed step (set -e) leaves nothing half made behind.
    trap 'echo "cluster.sh: wan up failed; removing what it made" >&2; wan_down || true' EXIT
    mkdir -p "$WAN_RUN"
    enable_forwarding
    for spec in "$@"; do
        [[ $spec =~ $WAN_SPEC_RE ]]
        count=$((count + 1 + BASH_REMATCH[1] + BASH_REMATCH[3]))
    done
    make_wan_cgroups "$count"
    start_lxcfs
    wan_hosts=()
    for spec in "$@"; do
        k=$((k + 1))
        [[ $spec =~ $WAN_SPEC_RE ]]
        make_cluster "$k" "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}" "${BASH_REMATCH[3]}" "${BASH_REMATCH[4]}" "$rate"
    done
    local_name=$(hostname)
    write_wan_hosts_files "$local_name"
    check_wan "$local_name"
    trap - EXIT
    print_wan "$rate" "$k"
}

wan_host_exists() {
    [ -e "/run/netns/$1" ] && [ -d "$(cgroup_dir memory "$1")" ]
}

# A child cgroup HOST/NAME for what `wan load` starts on HOST: lxcfs counts a cgroup's children
# in its load average and the memory controller charges a child's memory to the host, while
# `wan unload` finds exactly these processes there.
make_load_cgroup() {
    local c
    for c in $CONTROLLERS; do
        mkdir -p "$(cgroup_dir "$c" "$1/$2")"
    done
}

# Writes every byte of the size given (a one-byte bytes object repeated is a memset), says so,
# and holds it until killed. (No single quote in it: it goes through the agent's sh -c.)
HOG='import os, signal, sys
held = b"\1" * int(sys.argv[1])
print("held", flush=True)
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
while True:
    signal.pause()'

# Starts the hog on HOST, and returns once it holds its BYTES.
start_hog() {
    local host=$1 bytes=$2 fifo=$WAN_RUN/$1.hog line=''
    command -v python3 >/dev/null || die "wan load --memory needs python3"
    make_load_cgroup "$host" hog
    rm -f "$fifo"
    mkfifo "$fifo"
    # setsid: the hog outlives this script, out of its caller's session (and without the lock).
    # -f forks it off, so that the job here ends at once and bash does not report a hog that
    # is killed later.
    (
        join_cgroups "$host/hog"
        exec setsid -f "$AGENT" "$host" "exec python3 -c '$HOG' $bytes"
    ) </dev/null >"$fifo" 2>>"$WAN_RUN/$host.load.log" 9>&- &
    read -r line <"$fifo" || true
    rm -f "$fifo"
    [ "$line" != held ] || return 0
    if grep -q '^oom_kill [1-9]' "$(cgroup_dir memory "$host/hog")/memory.oom_control"; then
        die "the OOM killer ended the memory hog on $host before it held $(human_size "$bytes") ($host has $(human_size "$(cat "$(cgroup_dir memory "$host")/memory.limit_in_bytes")"))"
    fi
    die "the memory hog on $host failed: $(cat "$WAN_RUN/$host.load.log")"
}

# Starts N busy loops on HOST. CPU cgroups weigh a host's processes together against the other
# hosts whatever their nice value, so at nice 19 alone the burners would take the host's full
# share of this machine's 2 cores. A quota caps them all at 5% of a core; throttled, a process
# is still runnable, so each still counts 1 in the load average.
start_burners() {
    local host=$1 n=$2
    make_load_cgroup "$host" burn
    echo "$BURNER_QUOTA_US" >"$(cgroup_dir cpu "$host/burn")/cpu.cfs_quota_us"
    echo 2 >"$(cgroup_dir cpu "$host/burn")/cpu.shares" # and they yield to the host's own work
    (
        join_cgroups "$host/burn"
        exec setsid -w "$AGENT" "$host" "i=0; while [ \$i -lt $n ]; do nice -n 19 sh -c 'while :; do :; done' & i=\$((i + 1)); done"
    ) </dev/null >/dev/null 2>>"$WAN_RUN/$host.load.log" 9>&-
}

wan_load() {
    local host=$1 memory=$2 cpus=$3
    wan_host_exists "$host" || die "no WAN host '$host' (scripts/cluster.sh wan status lists them)"
    [ "$cpus" -eq 0 ] || start_burners "$host" "$cpus"
    [ -z "$memory" ] || start_hog "$host" "$(to_bytes "$memory")"
    # lxcfs averages the load of a cgroup from the first time its loadavg is read: read it now,
    # so that the host's load average rises from here, as a real host's would.
    "$AGENT" "$host" cat /proc/loadavg >/dev/null
}

wan_unload() {
    local host=$1 name c status=0
    wan_host_exists "$host" || die "no WAN host '$host' (scripts/cluster.sh wan status lists them)"
    for name in burn hog; do
        for c in $CONTROLLERS; do
            remove_cgroup "$(cgroup_dir "$c" "$host/$name")" || status=1
        done
    done
    rm -f "$WAN_RUN/$host.load.log"
    return "$status"
}

# What `wan load` holds on HOST: "200M 4cpu", or "-".
load_of() {
    local host=$1 held=() dir
    dir=$(cgroup_dir memory "$host/hog")
    [ ! -d "$dir" ] || held+=("$(($(cat "$dir/memory.usage_in_bytes") >> 20))M")
    dir=$(cgroup_dir cpu "$host/burn")
    [ ! -d "$dir" ] || held+=("$(wc -l <"$dir/cgroup.procs")cpu")
    [ ${#held[@]} -gt 0 ] || held=(-)
    echo "${held[*]}"
}

# One line per host; MEMFREE and LOADAVG as a process on the host reads them.
wan_status() {
    local hosts host seen memfree loadavg format='%-12s %-7s %-8s %-13s %-6s %-8s %-15s %-10s %s\n'
    hosts=$(wan_namespaces)
    if [ -z "$hosts" ]; then
        echo "no emulated WAN is up"
        return
    fi
    # shellcheck disable=SC2059  # the format is the table's
    printf "$format" HOST CLUSTER ROLE ADDRESS MEMORY MEMFREE LOADAVG LOADED PROCESSES
    for host in $hosts; do
        memfree='?' loadavg='?'
        if seen=$("$AGENT" "$host" "awk '/^MemFree:/ { print \$2 }' /proc/meminfo; cut -d' ' -f1-3 /proc/loadavg"); then
            memfree="$(($(echo "$seen" | head -n 1) >> 10))M"
            loadavg=$(echo "$seen" | tail -n 1)
        fi
        # shellcheck disable=SC2059
        printf "$format" "$host" "$(cluster_of "$host")" "$(role_of "$host")" \
            "$(ip -n "$host" -br -4 addr show dev eth0 | awk '{ sub(/\/.*/, "", $3); print $3 }')" \
            "$(human_size "$(cat "$(cgroup_dir memory "$host")/memory.limit_in_bytes")")" "$memfree" "$loadavg" \
            "$(load_of "$host")" "$(namespace_processes "$host" | grep . || echo -)"
    done
}

# `wan ...`: the arguments checked before anything is done.
wan_command() {
    [ $# -ge 1 ] || usage
    local sub=$1 specs=() rate='' host memory='' cpus=0 spec
    shift
    case $sub in
    up)
        while [ $# -gt 0 ]; do
            case $1 in
            --wan-rate) [ $# -ge 2 ] || usage; rate=$2; shift 2 ;;
            --wan-rate=*) rate=${1#--wan-rate=}; shift ;;
            -*) usage ;;
            *) specs+=("$1"); shift ;;
            esac
        done
        [ ${#specs[@]} -ge 1 ] || usage
        [ ${#specs[@]} -le "$WAN_MAX_CLUSTERS" ] || die "at most $WAN_MAX_CLUSTERS clusters, not ${#specs[@]}"
        for spec in "${specs[@]}"; do
            [[ $spec =~ $WAN_SPEC_RE ]] \
                || die "a cluster is COMPUTExCMEM+SERVERSxSMEM, e.g. 2x512M+3x1G (SERVERS may be 0), not '$spec'"
            [ "${BASH_REMATCH[1]}" -le "$WAN_MAX_COMPUTE" ] || die "at most $WAN_MAX_COMPUTE compute nodes per cluster: '$spec'"
            [ "${BASH_REMATCH[3]}" -le "$WAN_MAX_SERVERS" ] || die "at most $WAN_MAX_SERVERS memory nodes per cluster: '$spec'"
        done
        require_root
        require_wan_support
        [ -z "$rate" ] || command -v tc >/dev/null || die "--wan-rate needs tc (iproute2)"
        lock
        wan_up "$rate" "${specs[@]}"
        ;;
    down | status)
        [ $# -eq 0 ] || usage
        require_root
        if [ "$sub" = down ]; then
            lock
            wan_down
        else
            wan_status
        fi
        ;;
    load)
        [ $# -ge 1 ] || usage
        host=$1
        shift
        while [ $# -gt 0 ]; do
            case $1 in
            --memory) [ $# -ge 2 ] || usage; memory=$2; shift 2 ;;
            --memory=*) memory=${1#--memory=}; shift ;;
            --cpu) [ $# -ge 2 ] || usage; cpus=$2; shift 2 ;;
            --cpu=*) cpus=${1#--cpu=}; shift ;;
            *) usage ;;
            esac
        done
        [ -z "$memory" ] || [[ $memory =~ ^$SIZE_RE$ ]] || die "--memory takes a size such as 200M or 1G, not '$memory'"
        if ! [[ $cpus =~ ^[0-9]+$ ]] || [ "$cpus" -gt "$MAX_BURNERS" ]; then
            die "--cpu takes a number of processes from 0 to $MAX_BURNERS, not '$cpus'"
        fi
        [ -n "$memory" ] || [ "$cpus" -gt 0 ] || die "wan load needs --memory SIZE or --cpu N"
        require_root
        lock
        wan_load "$host" "$memory" "$cpus"
        ;;
    unload)
        [ $# -eq 1 ] || usage
        require_root
        lock
        wan_unload "$1"
        ;;
    *) usage ;;
    esac
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
wan) wan_command "$@" ;;
*) usage ;;
esac
