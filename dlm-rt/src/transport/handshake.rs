//! The start and the end of a job: each server says hello (its host, pid and memory) and is
//! told its setup; at shutdown each is asked to exit and answers.

use super::job::{Job, LinkState};
use super::protocol::{Hello, Request, Setup, TAG_BYE, TAG_HELLO, TAG_SETUP};
use mpi::point_to_point::{Destination, Source};
use mpi::topology::Communicator;

impl Job {
    /// Asks every server to exit and waits until each has answered (see [`Job::finish`] for a
    /// server that does not).
    pub fn shut_down_servers(&self) {
        let open: Vec<usize> = self.open_servers().collect();
        for &server in &open {
            self.send(server, Request::Shutdown);
        }
        for server in open {
            self.await_bye(server);
        }
    }

    /// Lets a pool's server go once the program holds nothing there: it is told the program
    /// leaves it, and is neither watched nor kept alive from then on.
    pub fn release_server(&mut self, server: usize) {
        self.send(server, Request::Shutdown);
        self.await_bye(server);
        self.links[server].state = LinkState::Released;
        self.watched.retain(|w| w.server != server);
    }

    /// Waits for `server`'s answer to [`Request::Shutdown`].
    fn await_bye(&self, server: usize) {
        let mut ack = [0u8; 8];
        let ack_ptr = ack.as_mut_ptr();
        // SAFETY: `ack` outlives the receive, which is finished before this function returns.
        let posted = unsafe {
            self.post(server, ack.len(), |count, datatype, rank, comm, request| {
                mpi::ffi::MPI_Irecv(ack_ptr.cast(), count, datatype, rank, TAG_BYE, comm, request)
            })
        };
        let mut receive = posted.unwrap_or_else(|lost| self.failed(server, lost));
        // Not `finish`: no keep-alive may follow a Shutdown.
        self.wait_for(server, || self.finished(&mut receive));
    }

    /// Compute side of the handshake: every server's hello, in server order.
    pub fn gather_hellos(&self) -> Vec<Hello> {
        (0..self.servers()).map(|server| self.receive_hello(server)).collect()
    }

    /// Compute side: `server`'s hello (its memory and pid, then its host name).
    pub(super) fn receive_hello(&self, server: usize) -> Hello {
        let (comm, rank) = self.route(server);
        let from = comm.process_at_rank(rank);
        let mut words = [0u64; 2];
        from.receive_into_with_tag(&mut words[..], TAG_HELLO);
        let (host, _) = from.receive_vec_with_tag::<u8>(TAG_HELLO);
        Hello { host: String::from_utf8_lossy(&host).into_owned(), pid: words[1] as u32, available_memory: words[0] }
    }

    pub fn send_setup(&self, server: usize, setup: Setup) {
        let words = [setup.page_size as u64, setup.capacity, u64::from(setup.compute_pid)];
        let (comm, rank) = self.route(server);
        comm.process_at_rank(rank).send_with_tag(&words[..], TAG_SETUP);
    }

    // Server side.

    /// Server side of the handshake (a job's own server, or a pool's worker greeting its program).
    pub fn hello(&self, hello: &Hello) -> Setup {
        let (comm, rank) = self.route(0);
        let compute = comm.process_at_rank(rank);
        compute.send_with_tag(&[hello.available_memory, u64::from(hello.pid)][..], TAG_HELLO);
        compute.send_with_tag(hello.host.as_bytes(), TAG_HELLO);
        let mut words = [0u64; 3];
        compute.receive_into_with_tag(&mut words[..], TAG_SETUP);
        Setup { page_size: words[0] as usize, capacity: words[1], compute_pid: words[2] as u32 }
    }

    /// Answers [`Request::Shutdown`] with 8 bytes on `TAG_BYE` (the compute process waits for
    /// them as bytes, like page data). A failure is ignored: the server exits either way.
    pub fn acknowledge_shutdown(&self) {
        let ack = [0u8; 8];
        // SAFETY: `ack` outlives the send, which is finished (or failed) before this returns.
        let posted = unsafe {
            self.post(0, ack.len(), |count, datatype, rank, comm, request| {
                mpi::ffi::MPI_Isend(ack.as_ptr().cast(), count, datatype, rank, TAG_BYE, comm, request)
            })
        };
        if let Ok(mut send) = posted {
            while let Ok(false) = self.test(&mut send) {}
        }
    }
}
