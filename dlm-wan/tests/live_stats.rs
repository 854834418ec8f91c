//! A job's live statistics through both managers, on this host alone (no emulated cluster): a
//! cluster manager (a DLM pool manager with compute node `localhost`, whose remote shell is then
//! a plain `sh -c`) and the WAN manager, both on 127.0.0.1 with MUNGE. The job is a shell script
//! that writes lines to `stats.jsonl` in its directory as a DLM program run with
//! `DLM_STATS_LIVE=stats.jsonl` would; the WAN manager's
//! `GET /v1/jobs/{id}/stats` must serve them while it runs and after, and its spool keep them.
//!
//! Prerequisites: root (the cluster manager then runs the job as the caller) and a running
//! munged with `munge`/`unmunge` (scripts/setup.sh).

use dlm_pool::api::Manager;
use dlm_pool::conf::PoolConf;
use dlm_pool::proto::{HeldBytes, StatLine};
use dlm_pool::state::Timing;
use dlm_wan::api::ManagerConfig;
use dlm_wan::client::{Address, WanClient};
use dlm_wan::hostconf::HostConf;
use dlm_wan::proto::{JobSpec, JobState, Mode, Program, StatSample};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

fn require_root_and_munge() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    assert_eq!(unsafe { libc::geteuid() }, 0, "run as root (the cluster manager runs jobs as their caller then)");
    let munge = std::process::Command::new("munge").arg("-n").output();
    assert!(
        munge.is_ok_and(|o| o.status.success()),
        "munged is not running: start it (`runuser -u munge -- /usr/sbin/munged`, or scripts/setup.sh)"
    );
}

/// A cluster manager with compute node `localhost`, on a thread of its own until the test ends.
fn cluster_manager(dir: &Path) -> SocketAddr {
    let conf = PoolConf::parse(Path::new("pool.conf"), "compute localhost 1G\n").unwrap();
    let config = dlm_pool::api::ManagerConfig {
        conf,
        listen: Some("127.0.0.1:0".parse().unwrap()),
        socket: None,
        timing: Timing::default(),
        munge_socket: None,
        rendezvous: None,
        advertise: None,
        spool: dir.join("lan-jobs"),
    };
    let (bound, tcp) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let manager = Manager::bind(config).await.unwrap();
            bound.send(manager.tcp_addr().unwrap()).unwrap();
            manager.run(std::future::pending()).await.unwrap();
        });
    });
    tcp.recv_timeout(Duration::from_secs(10)).expect("the cluster manager did not start")
}

fn line(t_ms: u64) -> StatLine {
    StatLine {
        t_ms,
        resident_bytes: t_ms << 10,
        local_budget_bytes: 16 << 20,
        faults: t_ms / 10,
        bytes_fetched: t_ms << 12,
        bytes_written_back: t_ms << 11,
        servers: vec![HeldBytes { host: "mem1".into(), bytes: t_ms << 13 }],
    }
}

#[test]
fn a_jobs_live_statistics_reach_the_wan_manager_and_its_spool() {
    require_root_and_munge();
    let dir = tempfile::tempdir().unwrap();
    let lan = cluster_manager(dir.path());
    let hostconf = HostConf::parse(Path::new("hostconf"), &format!("here {lan}\n")).unwrap();
    let spool = dir.path().join("wan-jobs");
    let config =
        ManagerConfig { hostconf, listen: "127.0.0.1:0".parse().unwrap(), spool: spool.clone(), munge_socket: None };
    let (bound, wan) = std::sync::mpsc::channel();
    let wan_thread = std::thread::spawn(move || {
        dlm_wan::api::run_foreground(config, |addr| bound.send(addr).unwrap()).unwrap();
    });
    let wan: SocketAddr = wan.recv_timeout(Duration::from_secs(10)).expect("the WAN manager did not start");
    let client = WanClient::new(Address::Tcp(wan.to_string()));

    // Two lines 2 s apart while it runs, a last one as it exits, as the runtime writes them.
    let json = |t| serde_json::to_string(&line(t)).unwrap();
    let script = format!(
        "#!/bin/sh\necho '{}' >>stats.jsonl\nsleep 2\necho '{}' >>stats.jsonl\nsleep 2\n\
         echo '{}' >>stats.jsonl\n",
        json(500),
        json(1000),
        json(1500)
    );
    let program = dir.path().join("job.sh");
    std::fs::write(&program, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    let spec = JobSpec {
        program: Program::Executable { file: "job.sh".into() },
        args: Vec::new(),
        memory_bytes: 16 << 20,
        mode: Mode::LocalFirst,
        user: None,
        inputs: Vec::new(),
        outputs: Vec::new(),
        place: None,
    };
    let id = client.submit(&dlm_wan::bundle::pack(&spec, &[program]).unwrap()).unwrap().id;

    let deadline = Instant::now() + Duration::from_secs(60);
    while client.stats(id).unwrap().samples.len() < 2 {
        let status = client.job(id).unwrap();
        assert!(!status.state.is_final() && Instant::now() < deadline, "{status:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let expected = |times: &[u64]| -> Vec<StatSample> { times.iter().map(|&t| line(t).into()).collect() };
    assert_eq!(client.stats(id).unwrap().samples, expected(&[500, 1000]), "each line once, in order, while it runs");
    let status = loop {
        let status = client.job(id).unwrap();
        if status.state.is_final() {
            break status;
        }
        assert!(Instant::now() < deadline, "{status:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!((status.state, status.exit_code), (JobState::Done, Some(0)), "{status:?}");
    assert_eq!(client.stats(id).unwrap().samples, expected(&[500, 1000, 1500]), "the last line too");
    let kept = std::fs::read_to_string(spool.join(id.to_string()).join("stats.jsonl")).unwrap();
    let kept: Vec<StatSample> = kept.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(kept, expected(&[500, 1000, 1500]), "the spool keeps them with the logs");
    assert!(client.stats(dlm_wan::proto::JobId(id.0 + 1)).is_err(), "no such job");

    client.down(false).unwrap();
    wan_thread.join().unwrap();
}
