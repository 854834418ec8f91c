//! Bringing up the job: MPI started with DLM's environment (`env`), then, by how this process
//! was launched ([`Launch`]), rank 0 of `mpirun`, a server rank, a singleton that spawns its
//! servers ([`spawn_servers`]), or a spawned server.

use super::env::prepare_mpi_environment;
use super::job::{merge, Job};
use super::protocol::COMPUTE_RANK;
use mpi::raw::{AsRaw, FromRaw};
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::Threading;
use std::ffi::CString;

/// How this process was started, and so what it must do.
pub enum Launch {
    /// Rank 0 of `mpirun -np K+1`; the servers are the other ranks of the world.
    MpirunCompute(Job),
    /// Rank 1..K of `mpirun`: serve.
    MpirunServer(Job),
    /// Started without `mpirun` (or `mpirun -np 1`): the servers must be spawned.
    Singleton,
    /// Spawned by a singleton: serve.
    SpawnedServer(Job),
}

/// Starts MPI and tells how this process was launched.
pub fn start() -> (mpi::environment::Universe, Launch) {
    prepare_mpi_environment();
    let Some((universe, _)) = mpi::initialize_with_threading(Threading::Serialized) else {
        crate::sys::fatal("MPI was already initialized; call dlm_startup before any MPI call");
    };
    // SAFETY: MPI is initialized; `parent` is a valid out-pointer; the NULL handle is a constant.
    let (parent, null) = unsafe {
        let mut parent = mpi::ffi::RSMPI_COMM_NULL;
        mpi::ffi::MPI_Comm_get_parent(&mut parent);
        (parent, mpi::ffi::RSMPI_COMM_NULL)
    };
    if parent != null {
        let comm = merge(parent, true);
        return (universe, Launch::SpawnedServer(Job::new(comm, 1, None)));
    }
    let world = universe.world();
    if world.size() == 1 {
        return (universe, Launch::Singleton);
    }
    // SAFETY: duplicating the world gives a communicator that we own and free on drop.
    let comm = unsafe {
        let mut dup = mpi::ffi::RSMPI_COMM_NULL;
        mpi::ffi::MPI_Comm_dup(world.as_raw(), &mut dup);
        SimpleCommunicator::from_raw(dup)
    };
    let rank = comm.rank();
    let job = Job::new(comm, rank, None);
    if rank == COMPUTE_RANK {
        (universe, Launch::MpirunCompute(job))
    } else {
        (universe, Launch::MpirunServer(job))
    }
}

/// Starts MPI for a compute process that joins a pool: the pool's rendezvous (`rendezvous`,
/// an `ompi-server` URI) is set before `MPI_Init`, and the job has no server until it connects
/// to them ([`Job::connect`]).
pub fn start_unlinked(rendezvous: &str) -> (mpi::environment::Universe, Job) {
    // Before MPI_Init: Open MPI reads it there, and a singleton's own daemon uses it to reach
    // the rendezvous.
    std::env::set_var("OMPI_MCA_pmix_server_uri", rendezvous);
    prepare_mpi_environment();
    let Some((universe, _)) = mpi::initialize_with_threading(Threading::Serialized) else {
        crate::sys::fatal("MPI was already initialized; call dlm_startup before any MPI call");
    };
    (universe, Job::unlinked())
}

/// Why the memory servers could not be spawned.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cannot find this program's executable to run it as a memory server: {0}")]
    Executable(#[source] std::io::Error),
    #[error("an argument or host name holds a NUL byte: {0}")]
    Nul(#[from] std::ffi::NulError),
    #[error("MPI_Comm_spawn of {count} memory server(s) on {hosts} failed (MPI error {code})")]
    Mpi { count: usize, hosts: String, code: i32 },
}

/// Spawns one memory server on each of `hosts`, running this same executable with `args`.
pub fn spawn_servers(hosts: &[String], args: &[String]) -> Result<Job, SpawnError> {
    let exe = std::env::current_exe().map_err(SpawnError::Executable)?;
    let command = CString::new(exe.as_os_str().as_encoded_bytes())?;
    let args: Vec<CString> = args.iter().map(|a| CString::new(a.as_bytes())).collect::<Result<_, _>>()?;
    let host_names: Vec<CString> = hosts.iter().map(|h| CString::new(h.as_bytes())).collect::<Result<_, _>>()?;
    // SAFETY: MPI is initialized (`start` ran) and the strings live until the call returns.
    let intercomm = unsafe { spawn_on_hosts(&command, &args, &host_names) }.map_err(|code| SpawnError::Mpi {
        count: hosts.len(),
        hosts: hosts.join(", "),
        code,
    })?;
    Ok(Job::new(merge(intercomm, false), COMPUTE_RANK, Some(intercomm)))
}

/// `MPI_Comm_spawn_multiple` of `command args` once on each host (the `host` info key), with
/// errors returned instead of fatal; the intercommunicator to the servers, or MPI's error code.
///
/// # Safety
/// MPI must be initialized.
unsafe fn spawn_on_hosts(command: &CString, args: &[CString], hosts: &[CString]) -> Result<mpi::ffi::MPI_Comm, i32> {
    let mut arg_ptrs: Vec<*mut libc::c_char> = args.iter().map(|a| a.as_ptr().cast_mut()).collect();
    arg_ptrs.push(std::ptr::null_mut());
    let key = c"host";
    let n = hosts.len();
    let mut commands: Vec<*mut libc::c_char> = vec![command.as_ptr().cast_mut(); n];
    let mut argvs: Vec<*mut *mut libc::c_char> = vec![arg_ptrs.as_mut_ptr(); n];
    let mut maxprocs: Vec<i32> = vec![1; n];
    let mut errcodes: Vec<i32> = vec![0; n];
    let mut infos = Vec::with_capacity(n);
    // SAFETY: reading MPI's predefined NULL handle after MPI_Init.
    let mut intercomm = unsafe { mpi::ffi::RSMPI_COMM_NULL };
    // SAFETY: every pointer handed to MPI points into a live CString or Vec of this function; the
    // info objects are created and freed here; spawn errors are returned, not fatal.
    let rc = unsafe {
        mpi::ffi::MPI_Comm_set_errhandler(mpi::ffi::RSMPI_COMM_SELF, mpi::ffi::RSMPI_ERRORS_RETURN);
        for host in hosts {
            let mut info = std::mem::zeroed();
            mpi::ffi::MPI_Info_create(&mut info);
            mpi::ffi::MPI_Info_set(info, key.as_ptr(), host.as_ptr());
            infos.push(info);
        }
        let rc = mpi::ffi::MPI_Comm_spawn_multiple(
            n as i32,
            commands.as_mut_ptr(),
            argvs.as_mut_ptr(),
            maxprocs.as_mut_ptr(),
            infos.as_mut_ptr(),
            0,
            mpi::ffi::RSMPI_COMM_SELF,
            &mut intercomm,
            errcodes.as_mut_ptr(),
        );
        for info in &mut infos {
            mpi::ffi::MPI_Info_free(info);
        }
        mpi::ffi::MPI_Comm_set_errhandler(mpi::ffi::RSMPI_COMM_SELF, mpi::ffi::RSMPI_ERRORS_ARE_FATAL);
        rc
    };
    if rc != 0 {
        return Err(rc);
    }
    Ok(intercomm)
}

/// Ends MPI in a memory server. rsmpi's `Universe` drop disconnects the parent communicator
/// twice (a crash in Open MPI), so a spawned server disconnects once itself and finalizes.
pub fn finalize_server(universe: mpi::environment::Universe) {
    std::mem::forget(universe);
    // SAFETY: MPI is initialized and nothing uses the parent communicator any more; after this
    // no MPI call is made (the process exits).
    unsafe {
        let mut parent = mpi::ffi::RSMPI_COMM_NULL;
        mpi::ffi::MPI_Comm_get_parent(&mut parent);
        if parent != mpi::ffi::RSMPI_COMM_NULL {
            mpi::ffi::MPI_Comm_disconnect(&mut parent);
        }
        mpi::ffi::MPI_Finalize();
    }
}
