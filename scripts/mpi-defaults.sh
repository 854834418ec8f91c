#!/usr/bin/env bash
# Writes DLM's Open MPI defaults into one of the MCA parameter files that Open MPI reads at
# startup, so that a plain `mpirun --host here,other ./prog` needs nothing exported:
#
#   scripts/mpi-defaults.sh system   Open MPI's own file (/etc/openmpi/openmpi-mca-params.conf
#                                    on Debian): every user's mpirun and daemons on this machine
#   scripts/mpi-defaults.sh user     $HOME/.openmpi/mca-params.conf: this user's, on every host
#                                    that shares the home directory
#
# scripts/install.sh and scripts/setup.sh call it. The defaults: Open MPI's daemons notice a
# peer behind a cut link (or a host that lost power) only by TCP keepalive, after 300 + 9 * 20 s
# by default, and until then mpirun waits for the lost daemon although the DLM program has
# already ended naming the host; with these, within about 6 s of the link going quiet, and the
# daemon behind the cut exits as soon (docs/RELIABILITY.md). They are the values the runtime
# sets itself for the daemons of a standalone run (prepare_mpi_environment in
# dlm-rt/src/transport.rs), which a plain mpirun never sees: it reads its parameters before the
# program starts. A live peer answers keepalive probes from its kernel, busy or not.
#
# The lines go in a marked block that a later run replaces; a parameter the file already sets
# outside the block is left as it is (the owner's choice wins, as an exported OMPI_MCA_*
# variable wins over every file).
set -euo pipefail

BEGIN="# BEGIN DLM defaults (scripts/mpi-defaults.sh replaces this block; delete it to undo)"
END="# END DLM defaults"
DEFAULTS=(
    "oob_tcp_keepalive_time = 4"
    "oob_tcp_keepalive_intvl = 1"
    "oob_tcp_keepalive_probes = 2"
)

die() {
    echo "mpi-defaults.sh: $*" >&2
    exit 1
}

[ $# -eq 1 ] || { echo "usage: $0 system|user" >&2; exit 2; }
command -v ompi_info >/dev/null || die "needs Open MPI's ompi_info (run scripts/setup.sh)"
# The files this Open MPI reads, highest priority first: the user's, then its own.
files=$(ompi_info --param mca base --level 9 --parsable 2>/dev/null \
    | sed -n 's/^mca:mca:base:param:mca_base_param_files:value://p')
[ -n "$files" ] || die "ompi_info names no MCA parameter files"
case $1 in
system) file=${files##*,} ;;
user) file=${files%%,*} ;;
*) echo "usage: $0 system|user" >&2; exit 2 ;;
esac

mkdir -p "$(dirname "$file")" || die "cannot create the directory of $file"
kept=$( [ -f "$file" ] && awk -v b="$BEGIN" -v e="$END" '$0 == b { skip = 1; next } $0 == e { skip = 0; next } !skip' "$file" || true)
block=()
for line in "${DEFAULTS[@]}"; do
    name=${line%% *}
    if printf '%s\n' "$kept" | grep -Eq "^[[:space:]]*$name[[:space:]]*="; then
        echo "mpi-defaults.sh: $file already sets $name; left as it is" >&2
    else
        block+=("$line")
    fi
done
# In place, not by rename: the file may be a symbolic link or a Debian conffile kept by dpkg.
{
    [ -z "$kept" ] || printf '%s\n' "$kept"
    if ((${#block[@]})); then
        printf '%s\n' "$BEGIN" "# Open MPI's daemons notice a lost host (TCP keepalive) in seconds, not 8 minutes" \
            "${block[@]}" "$END"
    fi
} >"$file.dlm.tmp" || die "cannot write $file (run it as its owner, or as root for 'system')"
cat "$file.dlm.tmp" >"$file"
rm -f "$file.dlm.tmp"
echo "DLM's Open MPI defaults are in $file (mpirun and its daemons read it)"
