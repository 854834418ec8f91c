//! The real manager on real sockets: HTTP over its Unix socket (peer credentials) and over
//! TCP on 127.0.0.1 (MUNGE credentials), with a stand-in resident server that registers and
//! reports through the same client the real one will use.
//!
//! Prerequisites (scripts/setup.sh provides them): root, to see another user's peer
//! credentials (`setpriv` to `nobody`); `curl`, to speak as that user; and a running munged
//! with `munge`/`unmunge` for the TCP tests. A missing one fails the test with what to do.

use dlm_pool::api::{Manager, ManagerConfig};
use dlm_pool::client::{munge_credential, Address, Auth, ClientError, PoolClient};
use dlm_pool::conf::PoolConf;
use dlm_pool::proto::{
    ClusterReport, HeldBytes, HeldClient, HostSample, JoinRequest, NodeJobId, NodeJobState, NodeJobStatus, Phase,
    RegisterRequest, Report, RunRequest, ServerId, ServerState, StatLine,
};
use dlm_pool::state::Timing;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const G: u64 = 1 << 30;

/// What `dlm pool up` would give the manager: ompi-server's URI.
const RENDEZVOUS: &str = "1523253248.0;tcp://192.0.2.2:48469";

/// Short clocks, so leases expire within a test.
const TIMING: Timing = Timing {
    lease: Duration::from_millis(1000),
    report_every: Duration::from_millis(200),
    server_timeout: Duration::from_millis(1000),
    rebuild_grace: Duration::from_millis(200),
};

/// A manager running on its own thread, stopped on drop.
struct Running {
    tcp: SocketAddr,
    socket: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    fn start(dir: &Path, conf: &str) -> Running {
        Self::start_with(dir, conf, Some(RENDEZVOUS.into()))
    }

    fn start_with(dir: &Path, conf: &str, rendezvous: Option<String>) -> Running {
        let conf = PoolConf::parse(Path::new("pool.conf"), conf).unwrap();
        let socket = dir.join("pool.sock");
        let config = ManagerConfig {
            conf,
            listen: Some("127.0.0.1:0".parse().unwrap()),
            socket: Some(socket.clone()),
            timing: TIMING,
            munge_socket: None,
            rendezvous,
            advertise: None,
            spool: dir.join("jobs"),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (bound, tcp) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let manager = Manager::bind(config).await.unwrap();
                bound.send(manager.tcp_addr().unwrap()).unwrap();
                manager.run(async move { stopped.await.unwrap_or(()) }).await.unwrap();
            });
        });
        let tcp = tcp.recv_timeout(Duration::from_secs(10)).expect("the manager did not start");
        Running { tcp, socket, stop: Some(stop), thread: Some(thread) }
    }

    fn local(&self) -> PoolClient {
        PoolClient::new(Address::Unix(self.socket.clone()))
    }

    fn tcp(&self) -> PoolClient {
        PoolClient::new(Address::Tcp(self.tcp.to_string()))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A world-readable temporary directory (another user must reach the socket in it).
fn open_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

fn sample() -> HostSample {
    HostSample { mem_free_bytes: 64 * G, inactive_bytes: 0, loadavg: [0.5, 0.4, 0.3] }
}

/// Registers a stand-in server for line `line` of host `host` and reports once.
fn register(client: &PoolClient, host: &str, pid: u32, line: Option<u32>) -> ServerId {
    let request = RegisterRequest {
        host: host.into(),
        pid,
        cap_bytes: 64 * G,
        endpoint: format!("mpi-port-{pid}"),
        server: line.map(ServerId),
    };
    let id = client.register(&request).unwrap().server;
    client.report(id, &Report { pid, host: sample(), clients: vec![] }).unwrap();
    id
}

/// A stand-in server's reports every [`TIMING`]`.report_every` on a thread of its own, until
/// dropped: for a test whose steps (processes started as another user) may, on a loaded machine,
/// take longer than the server timeout, after which the server would be down.
struct Reporting {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Reporting {
    fn start(client: PoolClient, server: ServerId, pid: u32) -> Reporting {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                client.report(server, &Report { pid, host: sample(), clients: vec![] }).unwrap();
                std::thread::sleep(TIMING.report_every);
            }
        });
        Reporting { stop, thread: Some(thread) }
    }
}

impl Drop for Reporting {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Waits until the manager has left its rebuilding phase.
fn wait_serving(client: &PoolClient) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while client.status().unwrap().phase != Phase::Serving {
        assert!(Instant::now() < deadline, "the manager stayed in its rebuilding phase");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn join(client: &PoolClient, bytes: u64) -> dlm_pool::proto::Assignment {
    client.join(&JoinRequest { bytes, page_bytes: None, pid: Some(4242), job: None }).unwrap()
}

fn refused(result: Result<impl std::fmt::Debug, ClientError>) -> (u16, String) {
    match result {
        Err(ClientError::Refused { code, message, .. }) => (code, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn require_root() {
    assert_eq!(euid(), 0, "prerequisite missing: this test runs as root (to switch to `nobody`); run it as root");
}

fn require_munge() {
    if let Err(e) = munge_credential(None) {
        panic!("prerequisite missing: {e}; run scripts/setup.sh (installs munge, starts munged)");
    }
}

#[test]
fn unix_socket_join_renew_leave_with_the_peers_real_uid() {
    let dir = open_dir();
    let manager = Running::start(dir.path(), "node01 8G\nnode02 8G\n");
    let local = manager.local();
    let s0 = register(&local, "node01", 501, None);
    let s1 = register(&local, "node02", 502, None);
    assert_eq!((s0, s1), (ServerId(0), ServerId(1)));
    wait_serving(&local);

    let a = join(&local, 12 * G);
    assert_eq!(a.rendezvous, RENDEZVOUS);
    assert_eq!(local.status().unwrap().rendezvous.as_deref(), Some(RENDEZVOUS));
    let shares: Vec<_> = a.shares.iter().map(|s| (s.server, s.bytes, s.endpoint.as_str())).collect();
    assert_eq!(shares, [(s0, 8 * G, "mpi-port-501"), (s1, 4 * G, "mpi-port-502")]);
    let status = local.status().unwrap();
    let client = &status.clients[0];
    // The kernel's word, not the body's: the pid is ours, not the 4242 the body claimed.
    assert_eq!((client.uid, client.pid), (euid(), std::process::id()));
    assert_eq!(client.user, dlm_pool::identity::user_name(euid()));
    assert_eq!(status.servers[0].used_bytes, 8 * G);
    assert_eq!(status.servers[0].load, 8.0 / 12.0);

    // Keep-alives past the lease's term keep the client; the servers see it with its lease.
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(300));
        let renewed = local.renew(&a.client, &a.lease).unwrap();
        assert!(renewed.lost.is_empty() && renewed.moves.is_empty());
        for (s, pid) in [(s0, 501), (s1, 502)] {
            let reply = local.report(s, &Report { pid, host: sample(), clients: vec![] }).unwrap();
            assert_eq!(reply.clients[0].lease, a.lease);
        }
    }
    let (code, message) = refused(local.renew(&a.client, "not-the-lease"));
    assert_eq!((code, message.as_str()), (403, format!("wrong lease for client {}", a.client).as_str()));
    local.leave(&a.client, &a.lease).unwrap();
    let status = local.status().unwrap();
    assert!(status.clients.is_empty());
    assert!(status.servers.iter().all(|s| s.used_bytes == 0));
    assert_eq!(refused(local.renew(&a.client, &a.lease)).0, 404);
}

#[test]
fn a_manager_without_rendezvous_refuses_joins_saying_why() {
    let dir = open_dir();
    let manager = Running::start_with(dir.path(), "node01 8G\n", None);
    let local = manager.local();
    register(&local, "node01", 501, None);
    wait_serving(&local);
    assert_eq!(local.status().unwrap().rendezvous, None);
    let (code, message) = refused(local.join(&JoinRequest { bytes: G, page_bytes: None, pid: None, job: None }));
    assert_eq!(code, 503);
    assert!(message.contains("not `dlm pool up`"), "{message}");
}

#[test]
fn a_client_that_stops_renewing_is_freed_within_the_lease() {
    let dir = open_dir();
    let manager = Running::start(dir.path(), "node01 8G\n");
    let local = manager.local();
    let s0 = register(&local, "node01", 501, None);
    wait_serving(&local);
    let a = join(&local, G);
    // As after a kill -9: no leave, no renewal. The server keeps reporting; the manager
    // keeps its monitor running and drops the client when the lease runs out.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = local.report(s0, &Report { pid: 501, host: sample(), clients: vec![] }).unwrap();
        if reply.clients.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the client's lease did not expire");
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = local.status().unwrap();
    assert!(status.clients.is_empty());
    assert_eq!(status.servers[0].used_bytes, 0);
    assert_eq!(refused(local.renew(&a.client, &a.lease)).0, 404);
    // The idle pool still serves.
    let b = join(&local, G);
    local.leave(&b.client, &b.lease).unwrap();
}

#[test]
fn another_users_peer_credentials_are_what_the_manager_sees() {
    require_root();
    let dir = open_dir();
    let manager = Running::start(dir.path(), "node01 8G\n");
    let local = manager.local();
    let server = register(&local, "node01", 501, None);
    let _reporting = Reporting::start(manager.local(), server, 501);
    wait_serving(&local);
    // As `nobody`, a join whose body claims to be root: the manager records nobody.
    let body = r#"{"bytes": 4096, "user": "root", "uid": 0, "pid": 1}"#;
    let (code, reply) = curl_as_nobody(&manager.socket, "POST", "/v1/clients", body);
    assert_eq!(code, 201, "{reply}");
    let status = local.status().unwrap();
    let nobody = &status.clients[0];
    assert_eq!((nobody.uid, nobody.user.as_str()), (65534, dlm_pool::identity::user_name(65534).as_str()));
    assert_ne!(nobody.pid, 1);
    // nobody may not act as a server, nor renew a client of root's.
    let a = join(&local, 4096);
    let register = r#"{"host": "node01", "pid": 9, "cap_bytes": 1, "endpoint": "x"}"#;
    let (code, reply) = curl_as_nobody(&manager.socket, "POST", "/v1/servers", register);
    assert_eq!(code, 403, "{reply}");
    let lease = format!(r#"{{"lease": "{}"}}"#, a.lease);
    let (code, reply) = curl_as_nobody(&manager.socket, "POST", &format!("/v1/clients/{}/renew", a.client), &lease);
    assert_eq!(code, 403, "{reply}");
    assert!(reply.contains("belongs to uid 0, not to uid 65534"), "{reply}");
}

/// One request as user `nobody` over the Unix socket with curl: (status, body).
fn curl_as_nobody(socket: &Path, method: &str, path: &str, body: &str) -> (u16, String) {
    let output = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "curl", "-s", "-w", "\n%{http_code}"])
        .arg("--unix-socket")
        .arg(socket)
        .args(["-X", method, "-H", "Content-Type: application/json", "-d", body])
        .arg(format!("http://pool{path}"))
        .output()
        .unwrap_or_else(|e| panic!("prerequisite missing: cannot run setpriv/curl ({e}); run scripts/setup.sh"));
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (reply, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or_else(|_| panic!("curl failed: {text} {:?}", output.stderr)), reply.to_string())
}

#[test]
fn tcp_needs_a_valid_munge_credential() {
    require_munge();
    let dir = open_dir();
    let manager = Running::start(dir.path(), "node01 8G\n");
    let tcp = manager.tcp();
    let cases = [
        (Auth::None, "needs `Authorization: MUNGE <credential>`"),
        (Auth::Header("MUNGE MUNGE:AwQFAAB7forged:".into()), "the MUNGE credential was refused"),
        (Auth::Header("Basic cm9vdDpyb290".into()), "needs `Authorization: MUNGE <credential>`"),
    ];
    for (auth, expected) in cases {
        let reply = tcp.send("GET", "/v1/status", None, &auth).unwrap();
        let body = String::from_utf8_lossy(&reply.body);
        assert_eq!(reply.code, 401, "{auth:?}: {body}");
        assert!(body.contains(expected), "{auth:?}: {body}");
    }
    // A credential made for something else (no payload), and a replayed one.
    let other = String::from_utf8(Command::new("munge").arg("-n").output().unwrap().stdout).unwrap();
    let reply = tcp.send("GET", "/v1/status", None, &Auth::Header(format!("MUNGE {}", other.trim()))).unwrap();
    assert_eq!(reply.code, 401);
    assert!(String::from_utf8_lossy(&reply.body).contains("payload is not `dlm-pool`"));
    let once = Auth::Header(format!("MUNGE {}", munge_credential(None).unwrap()));
    assert_eq!(tcp.send("GET", "/v1/status", None, &once).unwrap().code, 200);
    let replayed = tcp.send("GET", "/v1/status", None, &once).unwrap();
    assert_eq!(replayed.code, 401);
    let body = String::from_utf8_lossy(&replayed.body);
    assert!(body.to_lowercase().contains("replayed"), "{body}");
}

#[test]
fn tcp_join_renew_leave_with_munge() {
    require_munge();
    let dir = open_dir();
    let manager = Running::start(dir.path(), "node01 8G\nnode02 8G\n");
    let tcp = manager.tcp();
    let s0 = register(&tcp, "node01", 501, None);
    let s1 = register(&tcp, "node02", 502, None);
    // Every call over TCP runs munge or unmunge: reports keep the servers up meanwhile.
    let _reporting = [Reporting::start(manager.local(), s0, 501), Reporting::start(manager.local(), s1, 502)];
    wait_serving(&tcp);
    let a = join(&tcp, 3 * G);
    let status = tcp.status().unwrap();
    let client = &status.clients[0];
    // MUNGE's uid; over TCP the pid is the one the body gave (shown, trusted for nothing).
    assert_eq!((client.uid, client.pid, client.total_bytes), (euid(), 4242, 3 * G));
    tcp.renew(&a.client, &a.lease).unwrap();
    let (code, message) = refused(tcp.join(&JoinRequest { bytes: 14 * G, page_bytes: None, pid: None, job: None }));
    assert_eq!(code, 507);
    assert_eq!(
        message,
        format!("the pool cannot hold {} bytes: {} bytes are available on 2 servers up", 14 * G, 13 * G)
    );
    tcp.leave(&a.client, &a.lease).unwrap();
    assert!(tcp.status().unwrap().clients.is_empty());
}

#[test]
fn a_restarted_manager_rebuilds_from_the_servers() {
    let dir = open_dir();
    let conf = "node01 8G\nnode02 8G\n";
    let (a, held) = {
        let manager = Running::start(dir.path(), conf);
        let local = manager.local();
        register(&local, "node01", 501, None);
        register(&local, "node02", 502, None);
        wait_serving(&local);
        let a = join(&local, 12 * G);
        // What each server knows of its clients, from its report's reply.
        let held: Vec<Vec<HeldClient>> = [(0, 501), (1, 502)]
            .iter()
            .map(|&(s, pid)| {
                let reply = local.report(ServerId(s), &Report { pid, host: sample(), clients: vec![] }).unwrap();
                reply.clients.into_iter().map(|client| HeldClient { client, held_bytes: 0 }).collect()
            })
            .collect();
        (a, held)
    };
    // A new manager on the same socket: the client's renewal waits until the servers are
    // back, joins wait for the rebuild, then everything is as before.
    let manager = Running::start(dir.path(), conf);
    let local = manager.local();
    let (code, _) = refused(local.renew(&a.client, &a.lease));
    assert_eq!(code, 503);
    for (s, (host, pid)) in [("node01", 501), ("node02", 502)].into_iter().enumerate() {
        let request = RegisterRequest {
            host: host.into(),
            pid,
            cap_bytes: 64 * G,
            endpoint: format!("mpi-port-{pid}"),
            server: Some(ServerId(s as u32)),
        };
        assert_eq!(local.register(&request).unwrap().server, ServerId(s as u32));
        let reply =
            local.report(ServerId(s as u32), &Report { pid, host: sample(), clients: held[s].clone() }).unwrap();
        assert_eq!(reply.state, ServerState::Up);
        assert_eq!(reply.clients.len(), 1);
    }
    local.renew(&a.client, &a.lease).unwrap();
    wait_serving(&local);
    let status = local.status().unwrap();
    assert_eq!(status.clients.len(), 1);
    assert_eq!(status.clients[0].total_bytes, 12 * G);
    assert_eq!(status.servers.iter().map(|s| s.used_bytes).collect::<Vec<_>>(), [8 * G, 4 * G]);
    local.leave(&a.client, &a.lease).unwrap();
}

#[test]
fn drain_and_down_through_the_api() {
    let dir = open_dir();
    let manager = Running::start(dir.path(), "node01 8G\nnode02 8G\n");
    let local = manager.local();
    register(&local, "node01", 501, None);
    register(&local, "node02", 502, None);
    wait_serving(&local);
    let a = join(&local, 2 * G);
    let from = a.shares[0].server;
    let host = a.shares[0].host.clone();
    let drained = local.drain(&host).unwrap();
    assert_eq!(drained.servers, [from]);
    let renewed = local.renew(&a.client, &a.lease).unwrap();
    assert_eq!(renewed.moves.len(), 1);
    assert_eq!(renewed.moves[0].to[0].bytes, 2 * G);
    local.moved(&a.client, &a.lease, from).unwrap();
    let status = local.status().unwrap();
    assert_eq!(status.servers[from.0 as usize].state, ServerState::Down);
    let (code, message) = refused(local.down(false));
    assert_eq!((code, message.as_str()), (409, "1 clients are running; stop them or use --force"));
    local.down(true).unwrap();
    assert_eq!(refused(local.join(&JoinRequest { bytes: 1, page_bytes: None, pid: None, job: None })).0, 503);
}

/// A job of the cluster's manager on compute node `localhost` (the remote shell is then a
/// plain `sh -c`): created, given its files (a tar archive of `script` as `job.sh`), started.
fn start_job(client: &PoolClient, dir: &Path, script: &str, outputs: &[&str]) -> NodeJobId {
    let files = dir.join("files");
    std::fs::create_dir_all(&files).unwrap();
    let program = files.join("job.sh");
    std::fs::write(&program, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    let tar = Command::new("tar").arg("cf").arg("-").arg("-C").arg(&files).arg("job.sh").output().unwrap();
    assert!(tar.status.success());
    let request = RunRequest {
        node: "localhost".into(),
        user: dlm_pool::identity::user_name(euid()),
        local_bytes: 64 << 20,
        pool_bytes: 0,
        build: None,
        command: vec!["./job.sh".into(), "x".into()],
        outputs: outputs.iter().map(|o| o.to_string()).collect(),
        label: "test".into(),
    };
    let body = serde_json::to_vec(&request).unwrap();
    let created: NodeJobStatus = call(client, "POST", "/v1/jobs", Some(&body));
    assert_eq!(created.state, NodeJobState::AwaitingFiles);
    let reply = client
        .send_typed(
            "PUT",
            &format!("/v1/jobs/{}/files", created.id),
            Some(&tar.stdout),
            "application/x-tar",
            &Auth::Auto,
        )
        .unwrap();
    assert_eq!(reply.code, 202, "{}", String::from_utf8_lossy(&reply.body));
    created.id
}

fn call<T: serde::de::DeserializeOwned>(client: &PoolClient, method: &str, path: &str, body: Option<&[u8]>) -> T {
    let reply = client.send(method, path, body, &Auth::Auto).unwrap();
    client.check(&reply).unwrap();
    client.parse_json(&reply.body).unwrap()
}

fn raw(client: &PoolClient, path: &str) -> Vec<u8> {
    let reply = client.send("GET", path, None, &Auth::Auto).unwrap();
    client.check(&reply).unwrap();
    reply.body
}

fn wait_final(client: &PoolClient, id: &NodeJobId) -> NodeJobStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status: NodeJobStatus = call(client, "GET", &format!("/v1/jobs/{id}"), None);
        if status.state.is_final() {
            return status;
        }
        assert!(Instant::now() < deadline, "job {id} did not end: {status:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_job_on_a_compute_node_runs_and_returns_its_streams_status_and_outputs() {
    let dir = open_dir();
    let running = Running::start(dir.path(), "compute localhost 1G\n");
    let client = running.local();
    let script = "#!/bin/sh\necho hello $1\necho oops >&2\necho result-$1 >out.txt\nexit 3\n";
    let id = start_job(&client, dir.path(), script, &["out.txt", "never.txt"]);
    let report: ClusterReport = call(&client, "GET", "/v1/cluster", None);
    assert_eq!(report.nodes.len(), 1);
    let status = wait_final(&client, &id);
    assert_eq!((status.state, status.exit_code), (NodeJobState::Done, Some(3)), "{status:?}");
    assert_eq!(status.missing_outputs, ["never.txt"]);
    assert_eq!(raw(&client, &format!("/v1/jobs/{id}/stdout?offset=0")), b"hello x\n");
    assert_eq!(raw(&client, &format!("/v1/jobs/{id}/stdout?offset=6")), b"x\n");
    assert_eq!(raw(&client, &format!("/v1/jobs/{id}/stderr")), b"oops\n");
    let outputs = dir.path().join("outputs.tar");
    std::fs::write(&outputs, raw(&client, &format!("/v1/jobs/{id}/outputs"))).unwrap();
    let listed = Command::new("tar").arg("xOf").arg(&outputs).arg("out.txt").output().unwrap();
    assert_eq!(listed.stdout, b"result-x\n");
    assert!(!Path::new(&format!("/tmp/dlm-job-{id}")).exists(), "its directory on the node is removed");
    let reply = client.send("DELETE", &format!("/v1/jobs/{id}"), None, &Auth::Auto).unwrap();
    assert_eq!(reply.code, 204);
    let (code, _) = refused(client.check(&client.send("GET", &format!("/v1/jobs/{id}"), None, &Auth::Auto).unwrap()));
    assert_eq!(code, 404);
}

#[test]
fn a_cancelled_job_ends_with_every_process_it_started() {
    let dir = open_dir();
    let running = Running::start(dir.path(), "compute localhost 1G\n");
    let client = running.local();
    // The shell waits for its child: only a signal to the whole session ends both at once.
    let script = "#!/bin/sh\nsleep 600 &\necho $! >child.pid\necho started\nwait\n";
    let id = start_job(&client, dir.path(), script, &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let child = loop {
        if let Ok(pid) = std::fs::read_to_string(format!("/tmp/dlm-job-{id}/child.pid")) {
            if let Ok(pid) = pid.trim().parse::<u32>() {
                break pid;
            }
        }
        assert!(Instant::now() < deadline, "the job did not start");
        std::thread::sleep(Duration::from_millis(50));
    };
    let _: NodeJobStatus = call(&client, "POST", &format!("/v1/jobs/{id}/cancel"), None);
    let status = wait_final(&client, &id);
    assert_eq!(status.state, NodeJobState::Cancelled, "{status:?}");
    // Signalled with its shell; gone once reaped (its parent is gone too: init reaps it).
    let gone = Instant::now() + Duration::from_secs(3);
    while Path::new(&format!("/proc/{child}")).exists() {
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        assert!(Instant::now() < gone, "the job's child {child} outlived the cancel: {stat}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stat_line(t_ms: u64) -> StatLine {
    StatLine {
        t_ms,
        resident_bytes: t_ms << 10,
        local_budget_bytes: 64 << 20,
        faults: t_ms / 10,
        bytes_fetched: t_ms << 12,
        bytes_written_back: t_ms << 11,
        servers: vec![HeldBytes { host: "mem1".into(), bytes: t_ms << 13 }],
    }
}

#[test]
fn a_jobs_live_statistics_are_sampled_while_it_runs_and_served_with_its_last_line() {
    let dir = open_dir();
    let running = Running::start(dir.path(), "compute localhost 1G\n");
    let client = running.local();
    // What a DLM program run with DLM_STATS_LIVE=stats.jsonl writes in its directory: a line,
    // another 2 s later, a last one as it exits. Nobody asks for the cluster's report: the
    // monitor samples the node.
    let line = |t| serde_json::to_string(&stat_line(t)).unwrap();
    let script = format!(
        "#!/bin/sh\necho '{}' >>stats.jsonl\nsleep 2\necho '{}' >>stats.jsonl\nsleep 2\n\
         echo '{}' >>stats.jsonl\n",
        line(500),
        line(1000),
        line(1500)
    );
    let id = start_job(&client, dir.path(), &script, &[]);
    let stats =
        |from: u64| -> Vec<StatLine> { call(&client, "GET", &format!("/v1/jobs/{id}/stats?from={from}"), None) };
    let deadline = Instant::now() + Duration::from_secs(20);
    while stats(0).len() < 2 {
        let status: NodeJobStatus = call(&client, "GET", &format!("/v1/jobs/{id}"), None);
        assert!(!status.state.is_final() && Instant::now() < deadline, "{status:?}; samples: {:?}", stats(0));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(stats(0), [stat_line(500), stat_line(1000)], "each line once, in order");
    let status = wait_final(&client, &id);
    assert_eq!((status.state, status.exit_code), (NodeJobState::Done, Some(0)), "{status:?}");
    // The line written as it exited is read when it has ended.
    assert_eq!(stats(0), [stat_line(500), stat_line(1000), stat_line(1500)]);
    assert_eq!(stats(1), [stat_line(1000), stat_line(1500)]);
    assert!(stats(3).is_empty());
    let (code, _) = refused(client.check(&client.send("GET", "/v1/jobs/nosuch/stats", None, &Auth::Auto).unwrap()));
    assert_eq!(code, 404);
}
