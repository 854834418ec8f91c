#!/usr/bin/env bash
# Installs the DLM toolchain for the users of a machine, the way mpicc is installed:
#
#   scripts/install.sh [--prefix DIR] [--mpi-defaults system|user|none] [--pam]
#
# DIR (default: /usr/local) gets bin/dlmcc and dlm (`dlm doctor` checks a machine for DLM),
# lib/libdlm.a and libdlm.so, include/dlm.h, lib/pkgconfig/dlm.pc, the man pages dlmcc(1)
# and dlm(1) in share/man/man1, and the web portal's PAM policy in share/dlm/pam/dlm-portal.
# With --pam (as root) that policy also becomes /etc/pam.d/dlm-portal, the PAM service that
# `dlm portal` checks passwords with, unless the machine already has one (an administrator's
# own is kept).
# The installed dlmcc finds its runtime relative to its own location, so it works from any
# directory (`CC=dlmcc make`), and `pkg-config --cflags --libs dlm` gives what plain cc needs
# to build a program against the DLM API. Builds the release first if needed, and takes it from
# where cargo puts it (`cargo metadata`'s target directory: CARGO_TARGET_DIR or a cargo config
# may move it away from ./target).
#
# It also writes DLM's Open MPI defaults (scripts/mpi-defaults.sh) into the MCA parameter file
# that mpirun reads, so that a job under a plain `mpirun` whose memory server's host is lost ends
# within seconds instead of waiting minutes for Open MPI's daemon there: `system` (the default
# as root) is Open MPI's own file, for every user of the machine; `user` (the default
# otherwise) is the installing user's $HOME/.openmpi/mca-params.conf; `none` writes nothing.
# Install on every host that runs DLM jobs (or share the prefix and the home directory): each
# host's Open MPI daemon reads its own host's files.
set -euo pipefail

usage() {
    echo "usage: $0 [--prefix DIR] [--mpi-defaults system|user|none] [--pam]" >&2
    exit 2
}

prefix=/usr/local
mpi_defaults=user
[ "$(id -u)" -ne 0 ] || mpi_defaults=system
pam=no
while [ $# -gt 0 ]; do
    case $1 in
    --prefix) [ $# -ge 2 ] || usage; prefix=$2; shift 2 ;;
    --prefix=*) prefix=${1#*=}; shift ;;
    --mpi-defaults) [ $# -ge 2 ] || usage; mpi_defaults=$2; shift 2 ;;
    --mpi-defaults=*) mpi_defaults=${1#*=}; shift ;;
    --pam) pam=yes; shift ;;
    -h | --help) usage ;;
    *) echo "install.sh: unknown argument '$1'" >&2; usage ;;
    esac
done
case $mpi_defaults in system | user | none) ;; *) echo "install.sh: --mpi-defaults takes system, user or none" >&2; usage ;; esac
command -v mpicc >/dev/null || { echo "install.sh: needs Open MPI's mpicc (run scripts/setup.sh)" >&2; exit 1; }
cd "$(dirname "$0")/.."
cargo build --release -p dlm-rt -p dlmcc -p dlm-cli --lib --bins
release=$(scripts/release-dir)
mkdir -p "$prefix" && prefix=$(cd "$prefix" && pwd)

install -d "$prefix/bin" "$prefix/lib/pkgconfig" "$prefix/include" "$prefix/share/man/man1" "$prefix/share/dlm/pam"
install -m 755 "$release/dlmcc" "$prefix/bin/dlmcc"
install -m 755 "$release/dlm" "$prefix/bin/dlm"
install -m 644 docs/man/dlmcc.1 docs/man/dlm.1 "$prefix/share/man/man1/"
install -m 644 "$release/libdlm.a" "$prefix/lib/libdlm.a"
install -m 755 "$release/libdlm.so" "$prefix/lib/libdlm.so"
install -m 644 dlm-rt/include/dlm.h "$prefix/include/dlm.h"
install -m 644 dlm-portal/pam/dlm-portal "$prefix/share/dlm/pam/dlm-portal"
if [ "$pam" = yes ]; then
    if [ -e /etc/pam.d/dlm-portal ]; then
        echo "install.sh: /etc/pam.d/dlm-portal exists; kept as it is"
    else
        install -m 644 dlm-portal/pam/dlm-portal /etc/pam.d/dlm-portal
        echo "install.sh: installed the portal's PAM policy as /etc/pam.d/dlm-portal"
    fi
fi
# What a C program linked against the runtime needs besides it: MPI, and the system libraries
# of Rust's standard library.
cat >"$prefix/lib/pkgconfig/dlm.pc" <<PC
prefix=$prefix
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: dlm
Description: DLM (Distributed Large Memory): page big arrays to MPI memory servers
Version: $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
Cflags: -I\${includedir} $(mpicc --showme:compile)
Libs: -L\${libdir} -Wl,-rpath,\${libdir} -ldlm $(mpicc --showme:link) -lgcc_s -lutil -lrt -lpthread -lm -ldl
PC
[ "$mpi_defaults" = none ] || scripts/mpi-defaults.sh "$mpi_defaults"
echo "installed DLM into $prefix: bin/dlmcc, bin/dlm, lib/libdlm.{a,so}, include/dlm.h, lib/pkgconfig/dlm.pc, share/man/man1/{dlmcc,dlm}.1, share/dlm/pam/dlm-portal"
