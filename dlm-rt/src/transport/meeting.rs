//! Jobs that meet through a pool: a resident server's MPI port ([`Port`]), compute processes
//! that connect to it ([`Job::connect`]), and the admission that opens each connection: the
//! compute process names its pool client and lease ([`Admission`]), the server answers with its
//! hello or a refusal, and an admitted client sends its setup.
//!
//! Two separately started jobs meet only through the pool's rendezvous (Open MPI's
//! `ompi-server`): the resident servers are launched with `mpirun --ompi-server`, and a compute
//! process is given it in `OMPI_MCA_pmix_server_uri` before `MPI_Init` (`env`).

use super::job::Job;
use super::protocol::{Hello, Setup, COMPUTE_RANK, TAG_ADMIT, TAG_HELLO, TAG_SETUP};
use mpi::point_to_point::{Destination, Source};
use mpi::raw::{AsRaw, FromRaw};
use mpi::topology::{Communicator, SimpleCommunicator};
use std::ffi::{CStr, CString};
use std::time::{Duration, Instant};

/// Who a compute process is in the pool: its client id and its lease's secret, which the
/// manager gave it and the server checks against the manager's list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    pub client: String,
    pub lease: String,
}

/// A resident server's MPI port, closed on drop.
pub struct Port {
    name: CString,
}

impl Port {
    /// Opens a port; MPI's error code if it cannot.
    pub fn open() -> Result<Port, i32> {
        let mut name = vec![0u8; mpi::ffi::MPI_MAX_PORT_NAME as usize + 1];
        // SAFETY: the buffer holds MPI_MAX_PORT_NAME + 1 bytes, as MPI_Open_port requires.
        let rc = unsafe { mpi::ffi::MPI_Open_port(mpi::ffi::RSMPI_INFO_NULL, name.as_mut_ptr().cast()) };
        if rc != 0 {
            return Err(rc);
        }
        let name = CStr::from_bytes_until_nul(&name).expect("MPI ends the port name with NUL").to_owned();
        Ok(Port { name })
    }

    /// The port's name, which compute processes connect to.
    pub fn name(&self) -> String {
        self.name.to_string_lossy().into_owned()
    }

    /// Waits until a compute process connects; a server's job with it (one link, the compute
    /// process), or MPI's error code. Blocks: the resident server calls it on a thread of its own.
    pub fn accept(&self) -> Result<Job, i32> {
        // SAFETY: the port name is live; accept over COMM_SELF makes a new intercommunicator.
        let intercomm = unsafe {
            let mut intercomm = mpi::ffi::RSMPI_COMM_NULL;
            let rc = mpi::ffi::MPI_Comm_accept(
                self.name.as_ptr(),
                mpi::ffi::RSMPI_INFO_NULL,
                0,
                mpi::ffi::RSMPI_COMM_SELF,
                &mut intercomm,
            );
            if rc != 0 {
                return Err(rc);
            }
            intercomm
        };
        let mut job = Job::unlinked();
        job.add_link(merge(intercomm, true), intercomm, COMPUTE_RANK);
        Ok(job)
    }
}

impl Port {
    /// Connects to this port from this process and disconnects again, so that the thread
    /// waiting in [`Port::accept`] returns (it then sees that the server is closing).
    pub fn wake_acceptor(&self) {
        if let Ok(intercomm) = connect(&self.name()) {
            let mut job = Job::unlinked();
            job.add_link(merge(intercomm, false), intercomm, 1);
        }
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        // SAFETY: the port is open and its name live.
        unsafe { mpi::ffi::MPI_Close_port(self.name.as_ptr()) };
    }
}

/// Connects to the port `endpoint` (compute side); the intercommunicator, or MPI's error code.
fn connect(endpoint: &str) -> Result<mpi::ffi::MPI_Comm, ConnectError> {
    let port = CString::new(endpoint).map_err(|_| ConnectError::BadEndpoint(endpoint.to_string()))?;
    // SAFETY: the port name is live; errors on COMM_SELF are returned while connecting.
    unsafe {
        let mut intercomm = mpi::ffi::RSMPI_COMM_NULL;
        mpi::ffi::MPI_Comm_set_errhandler(mpi::ffi::RSMPI_COMM_SELF, mpi::ffi::RSMPI_ERRORS_RETURN);
        let rc = mpi::ffi::MPI_Comm_connect(
            port.as_ptr(),
            mpi::ffi::RSMPI_INFO_NULL,
            0,
            mpi::ffi::RSMPI_COMM_SELF,
            &mut intercomm,
        );
        mpi::ffi::MPI_Comm_set_errhandler(mpi::ffi::RSMPI_COMM_SELF, mpi::ffi::RSMPI_ERRORS_ARE_FATAL);
        if rc != 0 {
            return Err(ConnectError::Connect(rc));
        }
        Ok(intercomm)
    }
}

/// The intracommunicator of an intercommunicator's two sides: the compute process (`high`
/// false) is rank 0, the server rank 1.
fn merge(intercomm: mpi::ffi::MPI_Comm, high: bool) -> SimpleCommunicator {
    // SAFETY: `intercomm` is a live intercommunicator; the merged one is new and owned by the result.
    unsafe {
        let mut merged = mpi::ffi::RSMPI_COMM_NULL;
        mpi::ffi::MPI_Intercomm_merge(intercomm, i32::from(high), &mut merged);
        SimpleCommunicator::from_raw(merged)
    }
}

/// A server's answer to an admission: [admitted, available memory, pid], then its host name
/// (admitted) or why it refused.
const ADMITTED: u64 = 1;

impl Job {
    /// Connects to a resident server at `endpoint` and asks to be admitted; the server's index
    /// and hello.
    pub fn connect(&mut self, endpoint: &str, admission: &Admission) -> Result<(usize, Hello), ConnectError> {
        let intercomm = connect(endpoint)?;
        let server = self.add_link(merge(intercomm, false), intercomm, 1);
        let (comm, rank) = self.route(server);
        let peer = comm.process_at_rank(rank);
        peer.send_with_tag(format!("{} {}", admission.client, admission.lease).as_bytes(), TAG_ADMIT);
        let mut words = [0u64; 3];
        peer.receive_into_with_tag(&mut words[..], TAG_HELLO);
        let (text, _) = peer.receive_vec_with_tag::<u8>(TAG_HELLO);
        let text = String::from_utf8_lossy(&text).into_owned();
        if words[0] != ADMITTED {
            return Err(ConnectError::Refused(text));
        }
        Ok((server, Hello { host: text, pid: words[2] as u32, available_memory: words[1] }))
    }

    /// Server side: the admission the compute process sends first, if it comes within `limit`
    /// (a connection that sends nothing must not hold the server's door).
    pub fn receive_admission(&self, limit: Duration) -> Option<Admission> {
        let (comm, rank) = self.route(0);
        let started = Instant::now();
        loop {
            let mut arrived = 0;
            let mut status = std::mem::MaybeUninit::uninit();
            // SAFETY: the out-pointers are live locals; the communicator is live.
            let rc = unsafe { mpi::ffi::MPI_Iprobe(rank, TAG_ADMIT, comm.as_raw(), &mut arrived, status.as_mut_ptr()) };
            if rc != 0 || started.elapsed() > limit {
                return None;
            }
            if arrived != 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let (text, _) = comm.process_at_rank(rank).receive_vec_with_tag::<u8>(TAG_ADMIT);
        let text = String::from_utf8(text).ok()?;
        let (client, lease) = text.split_once(' ')?;
        Some(Admission { client: client.to_string(), lease: lease.to_string() })
    }

    /// Server side: admits the compute process with this server's hello, and returns its setup.
    pub fn admit(&self, hello: &Hello) -> Setup {
        let (comm, rank) = self.route(0);
        let compute = comm.process_at_rank(rank);
        compute.send_with_tag(&[ADMITTED, hello.available_memory, u64::from(hello.pid)][..], TAG_HELLO);
        compute.send_with_tag(hello.host.as_bytes(), TAG_HELLO);
        let mut words = [0u64; 3];
        compute.receive_into_with_tag(&mut words[..], TAG_SETUP);
        Setup { page_size: words[0] as usize, capacity: words[1], compute_pid: words[2] as u32 }
    }

    /// Server side: tells the compute process why it is not admitted.
    pub fn refuse(&self, reason: &str) {
        let (comm, rank) = self.route(0);
        let compute = comm.process_at_rank(rank);
        compute.send_with_tag(&[0u64, 0, 0][..], TAG_HELLO);
        compute.send_with_tag(reason.as_bytes(), TAG_HELLO);
    }
}

/// Why a compute process could not join a resident server.
#[derive(Debug)]
pub enum ConnectError {
    /// The endpoint holds a NUL byte: it is no MPI port name.
    BadEndpoint(String),
    /// `MPI_Comm_connect` failed with this MPI error code.
    Connect(i32),
    /// The server refused the admission, saying why.
    Refused(String),
}
