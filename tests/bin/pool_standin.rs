//! A stand-in for the resident memory server (`dlm pool serve`, written in dlm-rt), for the
//! tests of `dlm pool up`: launched the same way (`mpirun … PROGRAM --manager HOST:PORT --line I`,
//! through `DLM_POOL_SERVER_COMMAND`), it registers for its POOLCONF line over TCP (MUNGE) with
//! the host's name, reports every `report_ms` as a server must, and leaves when a reply says
//! `down`. It has no MPI port and holds no pages: its endpoint is a placeholder.

use dlm_pool::client::{Address, ClientError, PoolClient};
use dlm_pool::proto::{HostSample, RegisterRequest, Report, ServerId, ServerState};
use std::time::{Duration, Instant};

/// How long it keeps trying a manager it cannot reach before it gives up.
const PATIENCE: Duration = Duration::from_secs(60);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let manager = value("--manager").expect("--manager HOST:PORT");
    let line = value("--line").map(|l| ServerId(l.parse().expect("--line N")));
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname").trim().to_string();
    let client = PoolClient::new(Address::parse(&manager));
    let pid = std::process::id();
    let request = RegisterRequest {
        host: host.clone(),
        pid,
        cap_bytes: u64::MAX,
        endpoint: format!("standin-{host}-{pid}"),
        server: line,
    };
    let mut last_contact = Instant::now();
    let mut registered = None;
    loop {
        if last_contact.elapsed() > PATIENCE {
            eprintln!("pool_standin: no answer from the manager at {manager} for {} s; leaving", PATIENCE.as_secs());
            std::process::exit(1);
        }
        let Some((id, every)) = registered else {
            match client.register(&request) {
                Ok(reply) => {
                    eprintln!("pool_standin: server {} on {host}, pid {pid}", reply.server);
                    registered = Some((reply.server, Duration::from_millis(reply.report_ms)));
                    last_contact = Instant::now();
                }
                Err(e) => {
                    eprintln!("pool_standin: register: {e}");
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
            continue;
        };
        match client.report(id, &Report { pid, host: sample(), clients: vec![] }) {
            Ok(reply) if reply.state == ServerState::Down => {
                eprintln!("pool_standin: told down; leaving");
                return;
            }
            Ok(_) => last_contact = Instant::now(),
            Err(ClientError::Refused { code: 404, .. }) => registered = None,
            Err(e) => eprintln!("pool_standin: report: {e}"),
        }
        std::thread::sleep(every);
    }
}

/// MemFree and Inactive from /proc/meminfo, and /proc/loadavg.
fn sample() -> HostSample {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib = |key: &str| {
        meminfo.lines().find_map(|l| l.strip_prefix(key)?.split_whitespace().next()?.parse::<u64>().ok()).unwrap_or(0)
            * 1024
    };
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut load = loadavg.split_whitespace().map(|v| v.parse().unwrap_or(0.0));
    let mut next = || load.next().unwrap_or(0.0);
    HostSample { mem_free_bytes: kib("MemFree:"), inactive_bytes: kib("Inactive:"), loadavg: [next(), next(), next()] }
}
