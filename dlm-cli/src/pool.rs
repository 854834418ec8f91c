//! `dlm pool …`: the pool manager in the foreground, and the administrator's calls to it
//! (status, drain, down) through `dlm_pool::client`.

use crate::launch::Launched;
use dlm_pool::api::{self, ManagerConfig};
use dlm_pool::client::{Address, PoolClient, DEFAULT_SOCKET};
use dlm_pool::conf::PoolConf;
use dlm_pool::proto::{ClientStatus, ServerState, ServerStatus, Status};
use dlm_pool::state::Timing;
use dlm_units::Bytes;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// What `dlm pool manager --launch` starts besides the manager (see `launch`).
#[derive(Debug, Clone)]
pub struct LaunchOptions {
    /// The name the servers reach the manager by.
    pub advertise: String,
    /// Where the logs and ompi-server's URI file go.
    pub run_dir: PathBuf,
}

/// `dlm pool manager POOLCONF [--launch]`: serves until SIGINT/SIGTERM or `dlm pool down`;
/// with `--launch` it first starts the rendezvous, then the servers once it listens, and ends
/// them all before it returns.
pub fn manager(
    poolconf: &Path,
    listen: Option<SocketAddr>,
    socket: Option<PathBuf>,
    lease_secs: u64,
    launch: Option<LaunchOptions>,
) -> anyhow::Result<()> {
    let conf = PoolConf::load(poolconf)?;
    let timing = Timing { lease: Duration::from_secs(lease_secs.max(1)), ..Timing::default() };
    let servers = conf.servers.len();
    let mut launched = match &launch {
        Some(options) => Some(Launched::start(&options.run_dir)?),
        None => None,
    };
    let rendezvous = launched.as_ref().map(|l| l.uri.clone());
    // Programs on the compute nodes reach the manager as the servers do (DLM-WAN's jobs).
    let advertise = match (&launch, listen) {
        (Some(options), Some(addr)) => Some(format!("{}:{}", options.advertise, addr.port())),
        _ => None,
    };
    let spool = launch.as_ref().map_or_else(crate::launch::default_run_dir, |o| o.run_dir.clone()).join("jobs");
    let config = ManagerConfig {
        conf: conf.clone(),
        listen,
        socket: socket.clone(),
        timing,
        munge_socket: None,
        rendezvous,
        advertise,
        spool,
    };
    let result = api::run_foreground(config, |tcp| {
        let mut on = Vec::new();
        on.extend(tcp.map(|a| format!("tcp {a} (MUNGE)")));
        on.extend(socket.as_ref().map(|p| format!("unix {}", p.display())));
        eprintln!("dlm pool manager: {servers} servers in {}, listening on {}", poolconf.display(), on.join(", "));
        if let (Some(launched), Some(options)) = (launched.as_mut(), &launch) {
            match tcp {
                Some(addr) => launched.start_servers(&conf, &format!("{}:{}", options.advertise, addr.port())),
                None => eprintln!("dlm pool manager: no TCP listener: the servers cannot reach the manager"),
            }
        }
    });
    if let Some(mut launched) = launched {
        launched.stop();
    }
    result?;
    Ok(())
}

/// The manager to talk to: `-s ADDR`, else `$DLM_POOL`, else the default socket.
pub fn client(server: Option<String>) -> PoolClient {
    let text = server.or_else(|| std::env::var("DLM_POOL").ok()).unwrap_or_else(|| DEFAULT_SOCKET.to_string());
    PoolClient::new(Address::parse(&text))
}

/// `dlm pool status [--json]`.
pub fn status(client: &PoolClient, json: bool) -> anyhow::Result<()> {
    let status = client.status()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", render(&client.address, &status, unix_now()));
    }
    Ok(())
}

/// `dlm pool drain HOST`.
pub fn drain(client: &PoolClient, host: &str) -> anyhow::Result<()> {
    let drained = client.drain(host)?;
    let ids: Vec<String> = drained.servers.iter().map(|s| s.to_string()).collect();
    println!(
        "draining server(s) {} on {host}: {} client(s) move their pages off; the server leaves the pool when empty",
        ids.join(", "),
        drained.clients.len()
    );
    Ok(())
}

/// `dlm pool down [--force]`.
pub fn down(client: &PoolClient, force: bool) -> anyhow::Result<()> {
    client.down(force)?;
    println!("the pool is stopping: its servers leave on their next report, then the manager exits");
    Ok(())
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The status as two tables: servers, then clients.
fn render(address: &Address, status: &Status, now: u64) -> String {
    let up = status.servers.iter().filter(|s| s.state == ServerState::Up).count();
    let mut out = format!(
        "pool manager at {address}: {}, {up} of {} servers up, {} clients\n",
        name(&status.phase),
        status.servers.len(),
        status.clients.len()
    );
    match &status.rendezvous {
        Some(uri) => out.push_str(&format!("rendezvous (ompi-server): {uri}\n\n")),
        None => out.push_str(
            "rendezvous: none (started with `dlm pool manager`, not `dlm pool up`: programs cannot join)\n\n",
        ),
    }
    let mut rows =
        vec![row(&["ID", "HOST", "STATE", "CAP", "USED", "AVAILABLE", "HOST FREE", "LOAD", "LOADAVG", "CLIENTS"])];
    rows.extend(status.servers.iter().map(server_row));
    out.push_str(&table(&rows));
    if status.clients.is_empty() {
        out.push_str("\nno clients\n");
        return out;
    }
    let mut rows = vec![row(&["CLIENT", "USER", "HOST", "PID", "BYTES", "SINCE"])];
    rows.extend(status.clients.iter().map(|c| client_row(c, now)));
    out.push('\n');
    out.push_str(&table(&rows));
    out
}

/// A state's name as the JSON spells it (`up`, `not_registered`).
pub(crate) fn name<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
}

pub(crate) fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

fn server_row(s: &ServerStatus) -> Vec<String> {
    let state = match s.down_reason {
        Some(reason) => format!("{} ({})", name(&s.state), name(&reason)),
        None => name(&s.state),
    };
    vec![
        s.id.to_string(),
        s.host.clone(),
        state,
        Bytes(s.cap_bytes).to_string(),
        Bytes(s.used_bytes).to_string(),
        Bytes(s.available_bytes).to_string(),
        s.mem_available_bytes.map_or("-".into(), |b| Bytes(b).to_string()),
        format!("{:.2}", s.load),
        s.loadavg.map_or("-".into(), |l| format!("{:.2}", l[0])),
        s.clients.len().to_string(),
    ]
}

fn client_row(c: &ClientStatus, now: u64) -> Vec<String> {
    let bytes: Vec<String> = c.bytes.iter().map(|b| format!("{} on {}", Bytes(b.bytes), b.server)).collect();
    vec![
        c.id.to_string(),
        c.user.clone(),
        c.host.clone(),
        c.pid.to_string(),
        bytes.join(", "),
        format!("{}s ago", now.saturating_sub(c.since)),
    ]
}

/// Left-aligned columns, two spaces apart.
pub(crate) fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| rows.iter().filter_map(|r| r.get(i)).map(|c| c.chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (cell, width) in r.iter().zip(&widths) {
            let _ = write!(line, "{cell:width$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use dlm_pool::proto::{ClientId, DownReason, Phase, ServerBytes, ServerId};

    fn server(id: u32, state: ServerState, down_reason: Option<DownReason>) -> ServerStatus {
        ServerStatus {
            id: ServerId(id),
            host: format!("node0{id}"),
            pid: Some(100),
            endpoint: Some("port".into()),
            state,
            down_reason,
            cap_bytes: 8 << 30,
            used_bytes: 2 << 30,
            held_bytes: 0,
            available_bytes: 6 << 30,
            mem_available_bytes: Some(20 << 30),
            load: 0.5,
            loadavg: Some([1.25, 1.0, 0.5]),
            clients: vec![ClientId("ab".into())],
        }
    }

    #[test]
    fn renders_servers_and_clients() {
        let status = Status {
            phase: Phase::Serving,
            servers: vec![server(1, ServerState::Up, None), server(2, ServerState::Down, Some(DownReason::Silent))],
            clients: vec![ClientStatus {
                id: ClientId("ab".into()),
                host: "login1".into(),
                pid: 77,
                user: "alice".into(),
                uid: 1001,
                bytes: vec![ServerBytes { server: ServerId(1), host: "node01".into(), bytes: 2 << 30 }],
                total_bytes: 2 << 30,
                since: 990,
                lease_expires_in_ms: 4000,
                job: None,
            }],
            rendezvous: Some("1523253248.0;tcp://192.0.2.2:48469".into()),
        };
        let text = render(&Address::Unix("/run/dlm/pool.sock".into()), &status, 1000);
        let expected = "\
pool manager at /run/dlm/pool.sock: serving, 1 of 2 servers up, 1 clients
rendezvous (ompi-server): 1523253248.0;tcp://192.0.2.2:48469

ID  HOST    STATE          CAP    USED   AVAILABLE  HOST FREE  LOAD  LOADAVG  CLIENTS
1   node01  up             8 GiB  2 GiB  6 GiB      20 GiB     0.50  1.25     1
2   node02  down (silent)  8 GiB  2 GiB  6 GiB      20 GiB     0.50  1.25     1

CLIENT  USER   HOST    PID  BYTES       SINCE
ab      alice  login1  77   2 GiB on 1  10s ago
";
        assert_eq!(text, expected);
    }
}
