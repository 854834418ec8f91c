//! `dlm wan …`: the WAN manager in the foreground (`manager`), started detached (`up`), and the
//! administrator's calls to it (`status`, `down`) through `dlm_wan::client`; also the client
//! every DLM-WAN command talks through (`-w WANHOST`, `$DLM_WAN`).

use crate::launch::{euid, indent, new_session, signal, signal_group, tail, wait_for};
use crate::pool::{row, table, unix_now};
use anyhow::{bail, Context as _};
use dlm_units::Bytes;
use dlm_wan::api::{self, ManagerConfig};
use dlm_wan::client::{Address, ClientError, WanClient};
use dlm_wan::hostconf::HostConf;
use dlm_wan::proto::{ClusterStatus, NodeStatus, Reach, ServerSummary, WanStatus};
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a WAN manager that `up` gives up on has to stop before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// The WAN manager to talk to: `-w WANHOST`, else `$DLM_WAN`, else `localhost` (port 7460
/// when it names none).
pub fn client(wan: Option<String>) -> WanClient {
    let text = wan.or_else(|| std::env::var("DLM_WAN").ok().filter(|w| !w.is_empty()));
    WanClient::parse(text.as_deref().unwrap_or("localhost"))
}

/// The spool when none is given: `/var/spool/dlm-wan` for root, else `/var/tmp/dlm-wan-UID`
/// (both survive a reboot, as the jobs' files must).
pub fn default_spool() -> PathBuf {
    match euid() {
        0 => PathBuf::from("/var/spool/dlm-wan"),
        uid => PathBuf::from(format!("/var/tmp/dlm-wan-{uid}")),
    }
}

/// `dlm wan manager HOSTCONF`: serves until SIGINT/SIGTERM or `dlm wan down`.
pub fn manager(hostconf: &Path, listen: SocketAddr, spool: &Path) -> anyhow::Result<()> {
    let conf = HostConf::load(hostconf)?;
    let config = ManagerConfig { hostconf: conf, listen, spool: spool.to_path_buf(), munge_socket: None };
    api::run_foreground(config, |addr: SocketAddr| {
        eprintln!(
            "dlm wan manager: the clusters of {}, listening on tcp {addr} (MUNGE), spool {}",
            hostconf.display(),
            spool.display()
        )
    })?;
    Ok(())
}

/// `dlm wan status [--json]`.
pub fn status(client: &WanClient, json: bool) -> anyhow::Result<()> {
    let status = client.status()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", render(client.address(), &status, unix_now()));
    }
    Ok(())
}

/// `dlm wan down [--force]`.
pub fn down(client: &WanClient, force: bool) -> anyhow::Result<()> {
    client.down(force)?;
    if force {
        println!("the WAN manager is stopping; its queued and running jobs are cancelled");
    } else {
        println!("the WAN manager is stopping");
    }
    Ok(())
}

/// Options of `dlm wan up`, handed on to the manager it starts.
#[derive(Debug, Clone)]
pub struct UpOptions {
    pub hostconf: PathBuf,
    pub listen: SocketAddr,
    pub spool: PathBuf,
    /// How long to wait for the manager to answer with every cluster asked.
    pub timeout: Duration,
}

/// `dlm wan up HOSTCONF`: starts `dlm wan manager HOSTCONF …` detached (a new session, its
/// output in `SPOOL/manager.log`) and returns once it answers with every cluster asked at
/// least once; if it exits or does not get there in time, stops it and prints its log's end.
pub fn up(options: &UpOptions) -> anyhow::Result<()> {
    HostConf::load(&options.hostconf)?;
    let client = WanClient::new(Address::Tcp(reach(options.listen).to_string()));
    match client.status() {
        Ok(status) => bail!(
            "a WAN manager already answers on {} ({} clusters); stop it with `dlm wan down` first",
            client.address(),
            status.clusters.len()
        ),
        Err(e @ (ClientError::MungeSpawn(_) | ClientError::Munge(_))) => return Err(e.into()),
        Err(_) => {}
    }
    std::fs::create_dir_all(&options.spool)
        .with_context(|| format!("cannot make the spool {}", options.spool.display()))?;
    let log_path = options.spool.join("manager.log");
    let log = File::create(&log_path).with_context(|| format!("cannot write {}", log_path.display()))?;
    let hostconf = std::path::absolute(&options.hostconf).unwrap_or_else(|_| options.hostconf.clone());
    let spool = std::path::absolute(&options.spool).unwrap_or_else(|_| options.spool.clone());
    let mut command = Command::new(std::env::current_exe().context("cannot find the dlm executable")?);
    command.args(["wan", "manager"]).arg(&hostconf).arg("--listen").arg(options.listen.to_string());
    command.arg("--spool").arg(&spool);
    command.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
    new_session(&mut command);
    let mut manager = command.spawn().context("cannot start the WAN manager")?;
    let deadline = Instant::now() + options.timeout;
    let mut answered = false;
    loop {
        if let Some(exit) = manager.try_wait()? {
            bail!(
                "the WAN manager exited ({exit}) before it answered; the end of {}:\n{}",
                log_path.display(),
                indent(&tail(&log_path))
            );
        }
        match client.status() {
            Ok(status) if ready(&status) => {
                print!("{}", render(client.address(), &status, unix_now()));
                let host = match options.listen.ip() {
                    ip if ip.is_unspecified() => dlm::probe::hostname(),
                    ip => ip.to_string(),
                };
                eprintln!(
                    "dlm wan up: the WAN manager listens on {}, its log is {}; to submit from here:\n    export \
                     DLM_WAN={host}:{}",
                    options.listen,
                    log_path.display(),
                    options.listen.port()
                );
                return Ok(());
            }
            Ok(_) => answered = true,
            Err(e @ (ClientError::MungeSpawn(_) | ClientError::Munge(_))) => {
                stop(&client, &mut manager);
                return Err(e.into());
            }
            Err(_) => {}
        }
        if Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    stop(&client, &mut manager);
    let what = if answered { "answered but had not heard from every cluster" } else { "never answered" };
    bail!(
        "the WAN manager {what} within {} s, and was stopped; the end of {}:\n{}",
        options.timeout.as_secs(),
        log_path.display(),
        indent(&tail(&log_path))
    )
}

/// Where to reach a manager listening on `listen` from this host.
fn reach(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), listen.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(Ipv6Addr::LOCALHOST.into(), listen.port()),
        _ => listen,
    }
}

/// Whether the manager has asked every cluster once (none is still `unknown`).
fn ready(status: &WanStatus) -> bool {
    status.clusters.iter().all(|c| c.reach != Reach::Unknown)
}

/// Stops a manager that `up` started: `down --force`, else SIGTERM; SIGKILL to its session's
/// process group if it is still there after [`STOP_GRACE`].
fn stop(client: &WanClient, manager: &mut Child) {
    if client.down(true).is_err() {
        signal(manager.id(), libc::SIGTERM);
    }
    if wait_for(manager, STOP_GRACE).is_none() {
        signal_group(manager.id(), libc::SIGKILL);
        let _ = manager.wait();
    }
}

/// The status: a line for the manager, then per cluster a line and its nodes' and servers'
/// tables, then the queue.
fn render(address: &Address, status: &WanStatus, now: u64) -> String {
    let reachable = status.clusters.iter().filter(|c| c.reach == Reach::Reachable).count();
    let mut out = format!(
        "WAN manager at {address}: {} clusters, {reachable} reachable; up {}\n",
        status.clusters.len(),
        span(now.saturating_sub(status.since))
    );
    for cluster in &status.clusters {
        out.push('\n');
        out.push_str(&cluster_lines(cluster));
    }
    let queue: Vec<String> = status.queue.iter().map(|id| id.to_string()).collect();
    match queue.len() {
        0 => out.push_str("\nqueue: empty\n"),
        n => out.push_str(&format!("\nqueue ({n} jobs, next first): {}\n", queue.join(", "))),
    }
    out
}

fn cluster_lines(c: &ClusterStatus) -> String {
    let heard = c.heard_ms_ago.map_or("never heard from".to_string(), |ms| format!("heard {} ago", ms_span(ms)));
    let reach = match c.reach {
        Reach::Unknown => "not asked yet".to_string(),
        Reach::Reachable => format!("reachable ({heard})"),
        Reach::Unreachable => {
            format!("UNREACHABLE ({heard}): {}", c.error.as_deref().unwrap_or("no answer"))
        }
    };
    let mut out = format!(
        "cluster {}: manager {}, {reach}\n  {} clients, pool {} available, at most {} for one job\n",
        c.name,
        c.manager,
        c.clients,
        Bytes(c.pool_available_bytes),
        Bytes(c.max_job_bytes)
    );
    let errors = c.nodes.iter().any(|n| n.error.is_some());
    let mut header = vec!["NODE", "CAP", "FREE", "AVAILABLE", "LOAD", "CPUS", "BUSY", "JOBS"];
    if errors {
        header.push("ERROR");
    }
    let mut rows = vec![row(&header)];
    rows.extend(c.nodes.iter().map(|n| node_row(n, errors)));
    if c.nodes.is_empty() {
        out.push_str("  no compute nodes\n");
    } else {
        out.push_str(&indent(&table(&rows)));
        out.push('\n');
    }
    if c.servers.is_empty() {
        out.push_str("  no memory servers\n");
    } else {
        let mut rows = vec![row(&["SERVER", "STATE", "CAP", "AVAILABLE", "LOAD"])];
        rows.extend(c.servers.iter().map(server_row));
        out.push_str(&indent(&table(&rows)));
        out.push('\n');
    }
    out
}

fn node_row(n: &NodeStatus, errors: bool) -> Vec<String> {
    let mut cells = vec![
        n.host.clone(),
        Bytes(n.cap_bytes).to_string(),
        Bytes(n.free_bytes).to_string(),
        Bytes(n.available_bytes).to_string(),
        load(n.loadavg),
        n.cpus.to_string(),
        if n.busy { "busy" } else { "-" }.to_string(),
        n.jobs.to_string(),
    ];
    if errors {
        cells.push(n.error.clone().unwrap_or_default());
    }
    cells
}

fn server_row(s: &ServerSummary) -> Vec<String> {
    vec![
        s.host.clone(),
        s.state.clone(),
        Bytes(s.cap_bytes).to_string(),
        Bytes(s.available_bytes).to_string(),
        load(s.loadavg),
    ]
}

fn load(loadavg: Option<[f64; 3]>) -> String {
    loadavg.map_or("-".into(), |l| format!("{:.2}", l[0]))
}

/// A duration in milliseconds, in the unit that reads best.
fn ms_span(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 10_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        span(ms / 1000)
    }
}

/// A duration in seconds: `42 s`, `12 min`, `3 h 5 min`, `2 d 3 h`.
pub(crate) fn span(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs / 60),
        3600..86400 => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
        _ => format!("{} d {} h", secs / 86400, secs % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dlm_wan::proto::JobId;

    const G: u64 = 1 << 30;

    fn node(host: &str, error: Option<&str>) -> NodeStatus {
        NodeStatus {
            host: host.into(),
            cap_bytes: 16 * G,
            free_bytes: 12 * G,
            available_bytes: 14 * G,
            loadavg: error.is_none().then_some([0.5, 0.25, 0.0]),
            cpus: 8,
            busy: error.is_none() && host == "node02",
            jobs: 1,
            error: error.map(String::from),
        }
    }

    fn status() -> WanStatus {
        WanStatus {
            clusters: vec![
                ClusterStatus {
                    name: "tsubame".into(),
                    manager: "login1:7450".into(),
                    reach: Reach::Reachable,
                    error: None,
                    heard_ms_ago: Some(1500),
                    nodes: vec![node("node01", None), node("node02", None)],
                    servers: vec![ServerSummary {
                        host: "mem01".into(),
                        state: "up".into(),
                        cap_bytes: 48 * G,
                        available_bytes: 40 * G,
                        loadavg: Some([1.0, 1.0, 1.0]),
                    }],
                    pool_available_bytes: 40 * G,
                    clients: 3,
                    max_job_bytes: 64 * G,
                },
                ClusterStatus {
                    name: "kyoto".into(),
                    manager: "gw.kyoto:7450".into(),
                    reach: Reach::Unreachable,
                    error: Some("connection refused".into()),
                    heard_ms_ago: Some(300_000),
                    nodes: vec![node("k01", Some("cannot read /proc/meminfo"))],
                    servers: vec![],
                    pool_available_bytes: 0,
                    clients: 0,
                    max_job_bytes: 16 * G,
                },
            ],
            queue: vec![JobId(4), JobId(5)],
            since: 1000,
        }
    }

    #[test]
    fn renders_clusters_nodes_servers_and_the_queue() {
        let text = render(&Address::Tcp("wan1:7460".into()), &status(), 1000 + 7500);
        let expected = "\
WAN manager at wan1:7460: 2 clusters, 1 reachable; up 2 h 5 min

cluster tsubame: manager login1:7450, reachable (heard 1.5 s ago)
  3 clients, pool 40 GiB available, at most 64 GiB for one job
    NODE    CAP     FREE    AVAILABLE  LOAD  CPUS  BUSY  JOBS
    node01  16 GiB  12 GiB  14 GiB     0.50  8     -     1
    node02  16 GiB  12 GiB  14 GiB     0.50  8     busy  1
    SERVER  STATE  CAP     AVAILABLE  LOAD
    mem01   up     48 GiB  40 GiB     1.00

cluster kyoto: manager gw.kyoto:7450, UNREACHABLE (heard 5 min ago): connection refused
  0 clients, pool 0 B available, at most 16 GiB for one job
    NODE  CAP     FREE    AVAILABLE  LOAD  CPUS  BUSY  JOBS  ERROR
    k01   16 GiB  12 GiB  14 GiB     -     8     -     1     cannot read /proc/meminfo
  no memory servers

queue (2 jobs, next first): 4, 5
";
        assert_eq!(text, expected);
    }

    #[test]
    fn up_waits_until_every_cluster_was_asked() {
        let mut status = status();
        assert!(ready(&status));
        status.clusters[1].reach = Reach::Unknown;
        assert!(!ready(&status));
        status.clusters.clear();
        assert!(ready(&status));
    }

    #[test]
    fn the_address_defaults_and_reaches_a_wildcard_listener_here() {
        let wildcard: SocketAddr = "0.0.0.0:7460".parse().unwrap();
        assert_eq!(reach(wildcard).to_string(), "127.0.0.1:7460");
        assert_eq!(reach("[::]:9".parse().unwrap()).to_string(), "[::1]:9");
        assert_eq!(reach("10.0.0.5:7460".parse().unwrap()).to_string(), "10.0.0.5:7460");
        assert_eq!(client(Some("wan1".into())).address(), &Address::Tcp("wan1:7460".into()));
        assert_eq!(span(59), "59 s");
        assert_eq!(span(90_000), "1 d 1 h");
        assert_eq!(ms_span(40), "40 ms");
    }
}
