//! Jobs that meet through a pool: a resident server's door ([`Door`]), its workers' MPI ports
//! ([`Port`]), and compute processes that connect ([`Job::connect`]). A compute process knocks
//! at the door over TCP, naming its pool client and lease ([`Admission`]); the server checks
//! them with the manager's list, starts a worker and answers with the worker's port; the
//! compute process connects there, is greeted with the worker's hello and sends its setup.
//!
//! Two separately started jobs meet only through the pool's rendezvous (Open MPI's
//! `ompi-server`): the resident servers are launched with `mpirun --ompi-server`, and a compute
//! process is given it in `OMPI_MCA_pmix_server_uri` before `MPI_Init` (`env`).

use super::job::{merge, Job};
use super::protocol::{Hello, Setup, COMPUTE_RANK};
use std::ffi::{CStr, CString};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::time::Duration;

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

    /// Waits until a compute process connects; the connection, made a job by [`Accepted::link`],
    /// or MPI's error code. Blocks until the one program a worker serves connects.
    pub fn accept(&self) -> Result<Accepted, i32> {
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
        Ok(Accepted(intercomm))
    }
}

/// A connection accepted on a port, not yet a job.
pub struct Accepted(mpi::ffi::MPI_Comm);

// SAFETY: a communicator handle; the door thread that accepted it makes it a job.
unsafe impl Send for Accepted {}

impl Accepted {
    /// The server's job with the compute process that connected (one link).
    pub fn link(self) -> Job {
        let mut job = Job::unlinked();
        job.add_link(merge(self.0, true), self.0, COMPUTE_RANK);
        job
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

impl Job {
    /// Connects to a resident server whose door is `endpoint` (`HOST:PORT`): knocks with
    /// `admission` ([`knock`]) and, let in, connects to the MPI port of the worker the server
    /// started for it, and sends the setup `setup` gives for the worker's hello; the server's
    /// index and hello.
    pub fn connect(
        &mut self,
        endpoint: &str,
        admission: &Admission,
        setup: impl FnOnce(&Hello) -> Setup,
    ) -> Result<(usize, Hello), ConnectError> {
        let mpi_port = knock(endpoint, admission)?;
        let intercomm = connect(&mpi_port)?;
        let server = self.add_link(merge(intercomm, false), intercomm, 1);
        let hello = self.receive_hello(server);
        self.send_setup(server, setup(&hello));
        Ok((server, hello))
    }
}

/// How long a knock may take (a door that does not answer is a server that is gone).
const KNOCK_LIMIT: Duration = Duration::from_secs(10);

/// Knocks at a resident server's door (TCP, `HOST:PORT`): sends `ADMIT CLIENT LEASE`; the
/// answer is `go PORT`, the MPI port of a worker that waits for this process alone (Open MPI
/// 4.1 loses connections when several processes connect to one port at once: of six at once,
/// four hung), or `refused: WHY`.
fn knock(door: &str, admission: &Admission) -> Result<String, ConnectError> {
    let unreachable = |e: std::io::Error| ConnectError::Door(door.to_string(), e);
    let address = door
        .to_socket_addrs()
        .map_err(unreachable)?
        .next()
        .ok_or_else(|| unreachable(std::io::Error::new(std::io::ErrorKind::NotFound, "no address")))?;
    let mut stream = TcpStream::connect_timeout(&address, KNOCK_LIMIT).map_err(unreachable)?;
    stream.set_read_timeout(Some(KNOCK_LIMIT * 3)).map_err(unreachable)?;
    writeln!(stream, "ADMIT {} {}", admission.client, admission.lease).map_err(unreachable)?;
    let mut answer = String::new();
    BufReader::new(&stream).read_line(&mut answer).map_err(unreachable)?;
    let answer = answer.trim_end();
    if let Some(port) = answer.strip_prefix("go ") {
        return Ok(port.to_string());
    }
    match answer.strip_prefix("refused: ") {
        Some(reason) => Err(ConnectError::Refused(reason.to_string())),
        None => Err(ConnectError::Refused(format!("it answered `{answer}`"))),
    }
}

/// A resident server's door: the TCP listener where compute processes knock before they
/// connect to its MPI port.
pub struct Door {
    listener: TcpListener,
}

/// One knock at the door, not yet answered.
pub struct Knock {
    stream: TcpStream,
    pub admission: Admission,
}

impl Door {
    /// Listens on every address, on a port the kernel picks.
    pub fn open() -> std::io::Result<Door> {
        Ok(Door { listener: TcpListener::bind(("0.0.0.0", 0))? })
    }

    /// The endpoint compute processes are given: `HOST:PORT`.
    pub fn endpoint(&self, host: &str) -> std::io::Result<String> {
        Ok(format!("{host}:{}", self.listener.local_addr()?.port()))
    }

    /// The next knock that says who it is within [`KNOCK_LIMIT`]; others are dropped.
    pub fn next(&self) -> std::io::Result<Knock> {
        loop {
            let (stream, _) = self.listener.accept()?;
            stream.set_read_timeout(Some(KNOCK_LIMIT))?;
            let mut line = String::new();
            if BufReader::new(&stream).read_line(&mut line).is_err() {
                continue;
            }
            let mut words = line.split_whitespace();
            if let (Some("ADMIT"), Some(client), Some(lease), None) =
                (words.next(), words.next(), words.next(), words.next())
            {
                return Ok(Knock { stream, admission: Admission { client: client.into(), lease: lease.into() } });
            }
        }
    }
}

impl Knock {
    /// Lets the knocker in: it connects to the MPI port `port` next.
    pub fn let_in(mut self, port: &str) -> std::io::Result<()> {
        writeln!(self.stream, "go {port}")
    }

    /// Tells the knocker why not.
    pub fn refuse(mut self, reason: &str) {
        let _ = writeln!(self.stream, "refused: {reason}");
    }
}

/// Why a compute process could not join a resident server.
#[derive(Debug)]
pub enum ConnectError {
    /// The MPI port the server answered holds a NUL byte.
    BadEndpoint(String),
    /// The server's door (`HOST:PORT`) cannot be reached or broke off.
    Door(String, std::io::Error),
    /// `MPI_Comm_connect` failed with this MPI error code.
    Connect(i32),
    /// The server refused the admission, saying why.
    Refused(String),
}
