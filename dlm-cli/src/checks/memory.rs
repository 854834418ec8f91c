//! Available memory on every host that runs memory servers, against what the memfile lets them
//! hold: this machine's from `/proc/meminfo` (`MemAvailable`, as the runtime reads it), another
//! host's from its `/proc/meminfo` read by a process that `mpirun --host HOST` starts there —
//! the same launch path (ssh or the batch system) the runtime's servers take, so a host that
//! MPI cannot reach fails here too, within `DLM_SPAWN_TIMEOUT`.

use super::memfile::{is_this_machine, resolve, Servers};
use super::mpi::excerpt;
use crate::report::Finding;
use dlm::config::memfile::{Memfile, ServerLine};
use dlm::config::Config;
use dlm::probe;
use dlm_units::Bytes;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn check(servers: &Servers, config: &Config, mpirun: Option<&Path>) -> Vec<Finding> {
    let this_machine = format!("memory on {} (this machine)", probe::hostname());
    let available = match probe::available_memory() {
        Ok(bytes) => bytes,
        Err(e) => return vec![Finding::not_checked(this_machine, format!("cannot read /proc/meminfo: {e}"))],
    };
    let budget = Some(config.local_budget.unwrap_or(available / 4));
    let memfile = match servers {
        Servers::Listed(memfile) => memfile,
        Servers::OneOnLocalhost => {
            // With DLM_SERVER_MEM, or half of what is available.
            let server = Demand { capacity: config.server_mem.unwrap_or(available / 2), lines: Vec::new() };
            return vec![judge(this_machine, available, &server, budget)];
        }
        Servers::Unknown => {
            return vec![Finding::not_checked(this_machine, "not checked: the memfile was rejected (above)")];
        }
    };
    let (here, elsewhere) = demand_by_host(memfile);
    let mut findings = vec![judge(this_machine, available, &here, budget)];
    let limit = Duration::from_secs(config.spawn_timeout);
    findings.extend(elsewhere.iter().map(|(host, demand)| another_host(host, demand, mpirun, limit)));
    findings
}

/// The finding for a host other than this machine, whose memory a process started there by
/// mpirun reads.
fn another_host(host: &str, demand: &Demand, mpirun: Option<&Path>, limit: Duration) -> Finding {
    let topic = format!("memory on {host}");
    if resolve(host).is_err() {
        return Finding::not_checked(topic, "not checked: the host does not resolve (above)");
    }
    let Some(mpirun) = mpirun else {
        return Finding::not_checked(
            topic,
            "not checked: mpirun, which would start a process there, is missing (above)",
        );
    };
    match remote_available(mpirun, host, limit) {
        Ok(available) => judge(topic, available, demand, None),
        Err(why) => Finding::failure(
            topic,
            format!("MPI could not start a process there: {why}"),
            format!(
                "DLM starts its memory servers on {host} the same way: check that ssh {host} works without a \
                 password and finds the same Open MPI (or that your batch allocation includes {host})"
            ),
        ),
    }
}

/// What the memfile lets the servers of one host hold, and the lines that say so.
#[derive(Debug, Default)]
struct Demand {
    capacity: u64,
    lines: Vec<usize>,
}

impl Demand {
    fn add(&mut self, line: &ServerLine) {
        self.capacity = self.capacity.saturating_add(line.capacity);
        self.lines.push(line.line);
    }
}

/// The servers on this machine, and those on every other host in memfile order.
fn demand_by_host(memfile: &Memfile) -> (Demand, Vec<(&str, Demand)>) {
    let mut here = Demand::default();
    let mut elsewhere: Vec<(&str, Demand)> = Vec::new();
    for line in &memfile.servers {
        let local = resolve(&line.host).is_ok_and(|address| is_this_machine(&line.host, address));
        if local {
            here.add(line);
        } else if let Some((_, demand)) = elsewhere.iter_mut().find(|(host, _)| *host == line.host) {
            demand.add(line);
        } else {
            let mut demand = Demand::default();
            demand.add(line);
            elsewhere.push((&line.host, demand));
        }
    }
    (here, elsewhere)
}

/// Compares a host's available memory with what its servers and, where the program runs
/// (`budget`), the program's own resident DLM pages may take.
fn judge(topic: String, available: u64, servers: &Demand, budget: Option<u64>) -> Finding {
    let lines = match servers.lines.as_slice() {
        [] => String::new(),
        lines => format!(" (memfile line {})", lines.iter().map(|l| l.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let program = budget.map_or(String::new(), |b| format!(", the program's local budget {}", Bytes(b)));
    let budget = budget.unwrap_or(0);
    if servers.capacity > available {
        return Finding::failure(
            topic,
            format!(
                "the memory servers here may hold {}{lines} but only {} is available",
                Bytes(servers.capacity),
                Bytes(available)
            ),
            format!(
                "lower their sizes in the memfile to at most {} in all (less what the program keeps here), or put \
                 servers on other hosts",
                Bytes(available)
            ),
        );
    }
    if budget > available {
        return Finding::failure(
            topic,
            format!("the program's local budget {} exceeds the {} available", Bytes(budget), Bytes(available)),
            format!("set DLM_LOCAL_MEM to less than {}", Bytes(available)),
        );
    }
    if servers.capacity.saturating_add(budget) > available {
        return Finding::warning(
            topic,
            format!(
                "the memory servers here may hold {}{lines}{program}: together more than the {} available, so the \
                 host may run out of memory once they fill",
                Bytes(servers.capacity),
                Bytes(available)
            ),
            format!("lower the servers' sizes or DLM_LOCAL_MEM so that they add up to at most {}", Bytes(available)),
        );
    }
    let servers_here = match servers.capacity {
        0 => "no memory servers here".to_string(),
        capacity => format!("the memory servers here may hold {}{lines}", Bytes(capacity)),
    };
    Finding::ok(topic, format!("{} available; {servers_here}{program}", Bytes(available)))
}

/// `MemAvailable` of `host`, read by a process that mpirun starts there.
fn remote_available(mpirun: &Path, host: &str, limit: Duration) -> Result<u64, String> {
    let mut command = Command::new(mpirun);
    command.args(["-np", "1", "--host", host, "cat", "/proc/meminfo"]);
    if super::running_as_root() {
        // mpirun refuses root unless told otherwise; the runtime's own spawn does not ask.
        command.env("OMPI_ALLOW_RUN_AS_ROOT", "1").env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    }
    // A group of its own, so that its launch agent (ssh) can be ended with it.
    let child = command
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", mpirun.display()))?;
    let (succeeded, stdout, stderr) = finish_within(child, limit).ok_or_else(|| {
        format!("mpirun --host {host} did not finish within {} s (DLM_SPAWN_TIMEOUT)", limit.as_secs())
    })?;
    if !succeeded {
        return Err(excerpt(&stderr));
    }
    probe::mem_available(&String::from_utf8_lossy(&stdout))
        .ok_or_else(|| format!("no MemAvailable in the /proc/meminfo of {host}"))
}

/// Waits for `child` up to `limit`, reading its output meanwhile; kills it when the time is
/// up (`None`). Otherwise: whether it succeeded, its stdout and stderr.
fn finish_within(mut child: Child, limit: Duration) -> Option<(bool, Vec<u8>, Vec<u8>)> {
    let read_all = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = read_all(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = read_all(Box::new(child.stderr.take().expect("piped stderr")));
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let output = |reader: std::thread::JoinHandle<Vec<u8>>| reader.join().unwrap_or_default();
                return Some((status.success(), output(stdout), output(stderr)));
            }
            Ok(None) if started.elapsed() < limit => std::thread::sleep(Duration::from_millis(100)),
            // Out of time (or the wait failed): the readers are left behind, since processes that
            // mpirun started may still hold the pipes open.
            _ => {
                end_group(&mut child);
                return None;
            }
        }
    }
}

/// Ends `child`, its process group and the groups of its children (mpirun puts each launch
/// agent, such as ssh, in a group of its own and leaves it running when it is ended): first
/// with SIGTERM, so that mpirun can stop the daemons it started, then, after a grace period,
/// with SIGKILL.
fn end_group(child: &mut Child) {
    const GRACE: Duration = Duration::from_secs(2);
    let mut groups = vec![child.id()];
    groups.extend(child_groups(child.id()));
    let targets: Vec<String> = groups.iter().map(|group| format!("-{group}")).collect();
    let signal = |name: &str| Command::new("kill").arg(name).arg("--").args(&targets).stderr(Stdio::null()).status();
    let _ = signal("-TERM");
    let started = Instant::now();
    while started.elapsed() < GRACE && matches!(child.try_wait(), Ok(None)) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = signal("-KILL");
    let _ = child.wait();
}

/// The process groups of the children of process `parent`, other than its own.
fn child_groups(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut groups = Vec::new();
    for entry in entries.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // After the command name in parentheses: state, parent pid, process group.
        let mut fields = stat.rsplit_once(") ").map_or("", |(_, rest)| rest).split_whitespace().skip(1);
        let (Some(ppid), Some(group)) = (fields.next(), fields.next()) else { continue };
        if ppid.parse() == Ok(parent) {
            groups.extend(group.parse::<u32>().ok().filter(|g| *g != parent && !groups.contains(g)));
        }
    }
    groups
}
