#!/usr/bin/env bash
# Sequential-sweep paging throughput, side by side in one run: native memory, DLM with all data
# local, DLM at 25 % local, and the machine's ceilings (raw userfaultfd fault + copy at the DLM
# page size, MPI round trip of one page). Usage: scripts/bench-sweep.sh [MiB] [PAGE] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
MIB=${1:-1024}
PAGE=${2:-262144}
ROUNDS=${3:-3}
cargo build --release --example sweepbench >/dev/null 2>&1
B=target/release/examples/sweepbench
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_pml=ucx OMPI_MCA_pml_ucx_tls=any OMPI_MCA_pml_ucx_devices=any
result() { grep '^RESULT' | awk '{print $3}'; }
declare -A sum
for round in $(seq "$ROUNDS"); do
    sum[native]+=" $($B native "$MIB" | result)"
    sum[dlm100]+=" $(DLM_PAGE_SIZE=$PAGE DLM_LOCAL_MEM=$((MIB * 2))M $B dlm "$MIB" | result)"
    sum[dlm25]+=" $(DLM_PAGE_SIZE=$PAGE DLM_LOCAL_MEM=$((MIB / 4))M $B dlm "$MIB" | result)"
    sum[uffd]+=" $($B uffd "$MIB" "$PAGE" | result)"
    sum[mpi]+=" $(mpirun -np 2 $B mpi "$PAGE" | result)"
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
declare -A med
for k in native dlm100 dlm25 uffd mpi; do med[$k]=$(echo "${sum[$k]}" | median); done
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, kernel $(uname -r); $MIB MiB swept 3 times, DLM page $PAGE bytes, median of $ROUNDS rounds"
printf '%-34s %10s\n' "configuration" "GB/s"
printf '%-34s %10s   (%s)\n' "native" "${med[native]}" "${sum[native]# }"
printf '%-34s %10s   (%s)\n' "DLM, all data local" "${med[dlm100]}" "${sum[dlm100]# }"
printf '%-34s %10s   (%s)\n' "DLM, 25 % local" "${med[dlm25]}" "${sum[dlm25]# }"
printf '%-34s %10s   (%s)\n' "ceiling: userfaultfd fault + copy" "${med[uffd]}" "${sum[uffd]# }"
printf '%-34s %10s   (%s)\n' "ceiling: MPI page round trip" "${med[mpi]}" "${sum[mpi]# }"
awk -v n="${med[native]}" -v a="${med[dlm100]}" -v q="${med[dlm25]}" -v u="${med[uffd]}" -v m="${med[mpi]}" 'BEGIN {
    printf "ratio DLM 100%% local / native:            %.3f\n", a / n
    printf "ratio DLM 25%% local / native:             %.3f\n", q / n
    printf "ratio DLM 25%% local / userfaultfd ceiling: %.3f\n", q / u
    printf "ratio DLM 25%% local / MPI ceiling:         %.3f\n", q / m
}'
