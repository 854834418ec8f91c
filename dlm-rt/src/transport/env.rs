//! The MPI environment DLM sets before `MPI_Init` (a variable the user set wins).

/// Sets the MPI transport that is fast both under `mpirun` and between a singleton and the
/// servers it spawned (Open MPI's shared-memory BTL cannot reach spawned processes; UCX can),
/// lets a small machine run more servers than it has cores, keeps MPI from taking over the
/// program's SIGSEGV/SIGBUS/SIGFPE/SIGILL handlers, UCX from printing a backtrace when it
/// gives up (DLM says what happened in one line) and from hooking the allocation functions
/// (a dlmcc-built program's `free` must stay DLM's), and lets the daemons that a singleton
/// starts on other hosts notice a cut link within seconds (TCP keepalive; the default takes
/// 8 minutes, and until then a daemon behind the cut lives on). A variable the user set wins.
pub(super) fn prepare_mpi_environment() {
    const DEFAULTS: [(&str, &str); 12] = [
        ("OMPI_MCA_pml", "ucx"),
        ("OMPI_MCA_pml_ucx_tls", "any"),
        ("OMPI_MCA_pml_ucx_devices", "any"),
        ("OMPI_MCA_osc", "ucx"),
        ("OMPI_MCA_rmaps_base_oversubscribe", "1"),
        ("UCX_ERROR_SIGNALS", ""),
        ("OMPI_MCA_opal_signal", ""),
        ("UCX_HANDLE_ERRORS", "none"),
        ("UCX_MEM_MALLOC_HOOKS", "no"),
        ("OMPI_MCA_oob_tcp_keepalive_time", "4"),
        ("OMPI_MCA_oob_tcp_keepalive_intvl", "1"),
        ("OMPI_MCA_oob_tcp_keepalive_probes", "2"),
    ];
    for (name, value) in DEFAULTS {
        if std::env::var_os(name).is_none() {
            // Before MPI_Init: MPI reads its parameters from the environment there.
            std::env::set_var(name, value);
        }
    }
}
