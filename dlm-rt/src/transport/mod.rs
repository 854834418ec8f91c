//! MPI between the compute process (rank 0) and its memory servers (ranks 1..=K): bringing up
//! the job, the page protocol, and knowing that the other side is alive. Stands on `sys` only.
//!
//! - `env`: the MPI environment DLM sets before `MPI_Init`.
//! - `launch`: how this process was started ([`Launch`]: under `mpirun`, or a singleton that
//!   spawns its servers) and MPI's end in a server.
//! - `protocol`: the requests ([`Request`]), tags and handshake records ([`Hello`], [`Setup`]).
//! - `job`: the job's communicator ([`Job`]) and non-blocking page transfers ([`Transfer`]).
//! - `handshake`: hello and setup at the start, shutdown and its answer at the end.
//! - `liveness`: watched servers, keep-alives and the messages that name a lost server.
//! - `meeting`: a pool's resident server's port, compute processes connecting to it, and the
//!   admission that opens each connection.
//! - `serving`: the server's side of the protocol (requests polled, replies started).

mod env;
mod handshake;
mod job;
mod launch;
mod liveness;
mod meeting;
mod protocol;
mod serving;

pub use env::{leave_mpirun_job, mpirun_ranks, singleton_env};
pub use job::{Job, Transfer};
pub use launch::{finalize_server, spawn_servers, start, start_unlinked, Launch, SpawnError};
pub use liveness::{KEEP_ALIVE, SILENCE_LIMIT};
pub use meeting::{Admission, ConnectError, Door, Knock, Port};
pub use protocol::{Hello, Request, Run, Setup};
