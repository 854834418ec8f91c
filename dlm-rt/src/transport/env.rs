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

/// The variables `mpirun` gives the processes of its job (Open MPI 4.1 and its PMIx): a
/// process without them starts as a singleton.
const MPIRUN_JOB_VARS: [&str; 14] = [
    "PMIX_",
    "OMPI_COMM_WORLD_",
    "OMPI_MCA_ess",
    "OMPI_MCA_orte_",
    "OMPI_MCA_pmix",
    "OMPI_MCA_initial_wdir",
    "OMPI_MCA_mpi_oversubscribe",
    "OMPI_MCA_shmem_RUNTIME_QUERY_hint",
    "OMPI_APP_CTX_NUM_PROCS",
    "OMPI_COMMAND",
    "OMPI_FILE_LOCATION",
    "OMPI_FIRST_RANKS",
    "OMPI_NUM_APP_CTX",
    "OMPI_UNIVERSE_SIZE",
];

/// This process's environment without `mpirun`'s job variables: what a process started from
/// here needs to start MPI as a singleton of its own.
pub fn singleton_env() -> impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)> {
    let keep = |name: &str| !MPIRUN_JOB_VARS.iter().any(|prefix| name.starts_with(prefix));
    std::env::vars_os().filter(move |(name, _)| name.to_str().is_some_and(keep))
}

/// The number of processes of the `mpirun` job this process belongs to, if it was started by
/// `mpirun`.
pub fn mpirun_ranks() -> Option<String> {
    std::env::var("OMPI_COMM_WORLD_SIZE").ok()
}

/// Runs this program again, in this process, as an MPI singleton: the same executable and
/// arguments, the environment without `mpirun`'s job variables. A pool's servers are another
/// job, which a process reaches only through the rendezvous its own launcher knows; `mpirun`
/// was not told it, a singleton is (`OMPI_MCA_pmix_server_uri`). Nothing of the program has run
/// yet. Returns only if the program cannot be run again.
pub fn leave_mpirun_job(argv: &[String]) -> std::io::Error {
    use std::os::unix::process::CommandExt;
    let mut again = std::process::Command::new("/proc/self/exe");
    if let Some((name, args)) = argv.split_first() {
        again.arg0(name).args(args);
    }
    again.env_clear().envs(singleton_env()).exec()
}
