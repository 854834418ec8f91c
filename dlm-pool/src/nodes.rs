//! The cluster's compute nodes (POOLCONF `compute HOST SIZE` lines) as DLM-WAN places jobs on
//! them: each node's memory and load, sampled on demand through the remote shell, and what
//! the manager's jobs there reserve.
//!
//! A sample is the node's `/proc/meminfo` and `/proc/loadavg`, its CPU count, and the resident
//! size of each of the manager's jobs there, with the newest lines of each job's live statistics
//! (`DLM_STATS_LIVE`, which the runner points at the job's directory). The smoothed figure is the memory *not used by
//! those jobs* (MemFree plus their resident bytes, and the same with Inactive): a job's own
//! growth then moves nothing, while what it reserves (its whole budget) is taken off at once,
//! so two jobs placed a second apart cannot both count the same free memory.

use crate::conf::ConfLine;
use crate::jobs::LIVE_STATS;
use crate::proto::{NodeJobId, NodeReport, StatLine};
use crate::state::Ewma;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// One sample of a node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSample {
    pub mem_free_bytes: u64,
    pub inactive_bytes: u64,
    pub loadavg: [f64; 3],
    pub cpus: u32,
    /// Resident bytes of the manager's running jobs there.
    pub job_rss_bytes: BTreeMap<NodeJobId, u64>,
    /// The last [`STATS_LINES`] lines of each job's live statistics, oldest first, for the DLM
    /// programs among them.
    pub job_stats: BTreeMap<NodeJobId, Vec<StatLine>>,
}

/// What a job running on a node holds there, for the accounting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub job: NodeJobId,
    pub node: String,
    pub local_bytes: u64,
}

/// One compute node.
#[derive(Debug, Clone)]
struct Node {
    host: String,
    cap: u64,
    /// MemFree plus the jobs' resident bytes, smoothed.
    free_base: Option<Ewma>,
    /// MemFree + Inactive plus the jobs' resident bytes, smoothed.
    available_base: Option<Ewma>,
    loadavg: Option<[f64; 3]>,
    cpus: u32,
    sampled: Option<Instant>,
    error: Option<String>,
}

/// Every compute node of the cluster.
#[derive(Debug, Clone)]
pub struct Nodes {
    nodes: Vec<Node>,
}

impl Nodes {
    pub fn new(compute: &[ConfLine]) -> Self {
        let nodes = compute
            .iter()
            .map(|line| Node {
                host: line.host.clone(),
                cap: line.cap_bytes,
                free_base: None,
                available_base: None,
                loadavg: None,
                cpus: 1,
                sampled: None,
                error: None,
            })
            .collect();
        Nodes { nodes }
    }

    pub fn contains(&self, host: &str) -> bool {
        self.nodes.iter().any(|n| n.host == host)
    }

    /// The nodes whose sample is older than `age` (or missing): a report samples them first.
    pub fn stale(&self, now: Instant, age: Duration) -> Vec<String> {
        let old = |n: &&Node| n.sampled.is_none_or(|t| now.duration_since(t) >= age);
        self.nodes.iter().filter(old).map(|n| n.host.clone()).collect()
    }

    /// Folds in a node's sample, or notes why it could not be taken.
    pub fn record(&mut self, host: &str, sample: Result<NodeSample, String>, now: Instant) {
        let Some(node) = self.nodes.iter_mut().find(|n| n.host == host) else { return };
        node.sampled = Some(now);
        match sample {
            Ok(sample) => {
                let jobs: u64 = sample.job_rss_bytes.values().sum();
                smooth(&mut node.free_base, (sample.mem_free_bytes + jobs) as f64);
                smooth(&mut node.available_base, (sample.mem_free_bytes + sample.inactive_bytes + jobs) as f64);
                node.loadavg = Some(sample.loadavg);
                node.cpus = sample.cpus.max(1);
                node.error = None;
            }
            Err(error) => node.error = Some(error),
        }
    }

    /// Every node as `GET /v1/cluster` shows it, with what `reservations` hold there.
    pub fn report(&self, reservations: &[Reservation], now: Instant) -> Vec<NodeReport> {
        self.nodes.iter().map(|node| node_report(node, reservations, now)).collect()
    }
}

fn smooth(average: &mut Option<Ewma>, sample: f64) {
    match average {
        Some(ewma) => ewma.update(sample),
        None => *average = Some(Ewma::new(sample)),
    }
}

/// A node's figures: the cap's rest or its smoothed memory, less what its jobs reserve. A node
/// that could not be sampled offers nothing.
fn node_report(node: &Node, reservations: &[Reservation], now: Instant) -> NodeReport {
    let here: Vec<&Reservation> = reservations.iter().filter(|r| r.node == node.host).collect();
    let reserved: u64 = here.iter().map(|r| r.local_bytes).sum();
    let offer = |base: Option<Ewma>| match (&node.error, base) {
        (None, Some(ewma)) => {
            node.cap.saturating_sub(reserved).min((ewma.value().max(0.0) as u64).saturating_sub(reserved))
        }
        _ => 0,
    };
    NodeReport {
        host: node.host.clone(),
        cap_bytes: node.cap,
        free_bytes: offer(node.free_base),
        available_bytes: offer(node.available_base),
        loadavg: node.loadavg,
        cpus: node.cpus,
        jobs: here.len() as u32,
        error: node.error.clone(),
        sampled_ms_ago: node.sampled.map(|t| now.duration_since(t).as_millis().try_into().unwrap_or(u64::MAX)),
    }
}

/// How many of a job's newest lines of live statistics each sample reads: the runtime writes
/// two a second, and a node is sampled about once a second or less often, so that the live
/// view gets every line (the jobs' records keep each line once).
pub const STATS_LINES: usize = 6;

/// The shell line that samples a node: its memory, load and CPUs, then `JOB RSS_KB` for each
/// job directory given (its `pid` file names the program's process), then `JOB LINE` for each
/// of the last [`STATS_LINES`] lines of each one's live statistics. A job with neither (not
/// started yet, or not a DLM program) prints nothing and fails nothing.
pub fn probe_line(jobs: &[(NodeJobId, String)]) -> String {
    let mut line = String::from("cat /proc/meminfo && echo @loadavg && cat /proc/loadavg && echo @cpus && nproc");
    line.push_str(" && echo @jobs");
    let quoted: Vec<(&NodeJobId, String)> =
        jobs.iter().map(|(id, dir)| (id, crate::remote::shell_quote(dir))).collect();
    for (id, dir) in &quoted {
        line.push_str(&format!(
            "; p=$(cat {dir}/pid 2>/dev/null) && echo {id} $(awk '/^VmRSS:/ {{ print $2 }}' /proc/$p/status 2>/dev/null)"
        ));
    }
    line.push_str("; echo @stats");
    for (id, dir) in &quoted {
        line.push_str(&format!("; tail -n {STATS_LINES} {dir}/{LIVE_STATS} 2>/dev/null | sed 's/^/{id} /'"));
    }
    line.push_str("; true");
    line
}

/// Reads what [`probe_line`] printed.
pub fn parse_probe(text: &str) -> Result<NodeSample, String> {
    let mut sections = BTreeMap::new();
    let mut current = "meminfo";
    for line in text.lines() {
        if let Some(name) = line.strip_prefix('@') {
            current = name;
            continue;
        }
        sections.entry(current).or_insert_with(Vec::new).push(line);
    }
    let section = |name: &str| sections.get(name).cloned().unwrap_or_default();
    let meminfo = section("meminfo");
    let kib =
        |field: &str| meminfo.iter().find_map(|l| kib_field(l, field)).ok_or(format!("no {field} in /proc/meminfo"));
    let loadavg = parse_loadavg(section("loadavg").first().copied().unwrap_or_default())?;
    let cpus = section("cpus").first().and_then(|c| c.trim().parse().ok()).ok_or("nproc printed no number")?;
    let job_rss_bytes = section("jobs")
        .iter()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let id = words.next()?;
            let kib: u64 = words.next()?.parse().ok()?;
            Some((NodeJobId(id.to_string()), kib * 1024))
        })
        .collect();
    // A line cut short or not written by DLM is skipped: the next sample has the next one.
    let mut job_stats: BTreeMap<NodeJobId, Vec<StatLine>> = BTreeMap::new();
    let stats = section("stats").into_iter().filter_map(|l| {
        let (id, line) = l.split_once(' ')?;
        Some((NodeJobId(id.to_string()), serde_json::from_str(line).ok()?))
    });
    for (id, line) in stats {
        job_stats.entry(id).or_default().push(line);
    }
    Ok(NodeSample {
        mem_free_bytes: kib("MemFree")? * 1024,
        inactive_bytes: kib("Inactive")? * 1024,
        loadavg,
        cpus,
        job_rss_bytes,
        job_stats,
    })
}

/// `Field:   1234 kB` → 1234.
fn kib_field(line: &str, field: &str) -> Option<u64> {
    let rest = line.strip_prefix(field)?.strip_prefix(':')?;
    rest.split_whitespace().next()?.parse().ok()
}

fn parse_loadavg(line: &str) -> Result<[f64; 3], String> {
    let numbers: Vec<f64> = line.split_whitespace().take(3).filter_map(|w| w.parse().ok()).collect();
    numbers.try_into().map_err(|_| format!("/proc/loadavg reads `{line}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: u64 = 1 << 20;

    fn sample(free_mib: u64, inactive_mib: u64, jobs: &[(&str, u64)]) -> NodeSample {
        NodeSample {
            mem_free_bytes: free_mib * M,
            inactive_bytes: inactive_mib * M,
            loadavg: [0.5, 0.25, 0.1],
            cpus: 2,
            job_rss_bytes: jobs.iter().map(|(id, mib)| (NodeJobId(id.to_string()), mib * M)).collect(),
            job_stats: BTreeMap::new(),
        }
    }

    fn stat_line(t_ms: u64, fetched: u64) -> StatLine {
        StatLine {
            t_ms,
            resident_bytes: 3 * M,
            local_budget_bytes: 4 * M,
            faults: 10,
            bytes_fetched: fetched,
            bytes_written_back: M,
            servers: vec![crate::proto::HeldBytes { host: "mem1".into(), bytes: 8 * M }],
        }
    }

    fn nodes(cap_mib: u64) -> Nodes {
        Nodes::new(&[ConfLine { host: "n1".into(), cap_bytes: cap_mib * M, line: 1 }])
    }

    #[test]
    fn parses_what_the_probe_prints() {
        let out = sample_output();
        let parsed = parse_probe(&out).unwrap();
        assert_eq!(parsed, sample(1000, 500, &[("ab12", 3)]));
        assert!(parse_probe("MemFree: 1 kB\n@loadavg\nbusy\n@cpus\n2\n").unwrap_err().contains("/proc/loadavg"));
    }

    #[test]
    fn parses_the_jobs_statistics_lines_and_skips_broken_ones() {
        let line = serde_json::to_string(&stat_line(1500, 7 * M)).unwrap();
        let out = format!("{}@stats\nab12 {line}\ncd34 {{\"t_ms\": 3, \"resid\ncd56\n", sample_output());
        let parsed = parse_probe(&out).unwrap();
        assert_eq!(parsed.job_stats.len(), 1, "{:?}", parsed.job_stats);
        assert_eq!(parsed.job_stats[&NodeJobId("ab12".into())], [stat_line(1500, 7 * M)]);
        assert_eq!(parsed.job_rss_bytes.len(), 1);
    }

    #[test]
    fn the_probe_reads_each_jobs_last_statistics_lines_here() {
        let dir = tempfile::tempdir().unwrap();
        let (first, last) = (stat_line(500, M), stat_line(1000, 2 * M));
        let text = format!("{}\n{}\n", serde_json::to_string(&first).unwrap(), serde_json::to_string(&last).unwrap());
        std::fs::write(dir.path().join(LIVE_STATS), text).unwrap();
        let jobs = [
            (NodeJobId("new".into()), "/nonexistent".to_string()),
            (NodeJobId("live".into()), dir.path().display().to_string()),
            (NodeJobId("plain".into()), "/nonexistent".to_string()),
        ];
        let out = crate::remote::on_host("localhost", &probe_line(&jobs)).output().unwrap();
        assert!(out.status.success(), "jobs with no files fail nothing: {out:?}");
        let parsed = parse_probe(&String::from_utf8_lossy(&out.stdout)).unwrap();
        assert_eq!(parsed.job_stats.into_iter().collect::<Vec<_>>(), [(NodeJobId("live".into()), vec![first, last])]);
    }

    fn sample_output() -> String {
        format!(
            "MemTotal: 4000000 kB\nMemFree: {} kB\nInactive: {} kB\n@loadavg\n0.50 0.25 0.10 1/99 42\n@cpus\n2\n@jobs\nab12 3072\ngone\n",
            1000 * 1024,
            500 * 1024
        )
    }

    #[test]
    fn the_probe_line_runs_and_parses_here() {
        let out = crate::remote::on_host("localhost", &probe_line(&[(NodeJobId("x".into()), "/nonexistent".into())]))
            .output()
            .unwrap();
        let parsed = parse_probe(&String::from_utf8_lossy(&out.stdout)).unwrap();
        assert!(parsed.mem_free_bytes > 0 && parsed.cpus >= 1, "{parsed:?}");
        assert!(parsed.job_rss_bytes.is_empty());
    }

    #[test]
    fn reservations_come_off_at_once_and_a_jobs_growth_moves_nothing() {
        let now = Instant::now();
        let mut n = nodes(800);
        n.record("n1", Ok(sample(1000, 500, &[])), now);
        let report = |n: &Nodes, r: &[Reservation]| n.report(r, now)[0].clone();
        let r0 = report(&n, &[]);
        assert_eq!((r0.free_bytes, r0.available_bytes), (800 * M, 800 * M), "the cap bounds both");
        let job = Reservation { job: NodeJobId("j".into()), node: "n1".into(), local_bytes: 300 * M };
        let r1 = report(&n, std::slice::from_ref(&job));
        assert_eq!((r1.free_bytes, r1.available_bytes, r1.jobs), (500 * M, 500 * M, 1));
        // The job has grown to 300 MiB: MemFree fell by as much, the figures stay.
        n.record("n1", Ok(sample(700, 500, &[("j", 300)])), now);
        assert_eq!(report(&n, std::slice::from_ref(&job)).free_bytes, 500 * M);
    }

    #[test]
    fn memory_not_the_cap_bounds_a_full_node_and_inactive_counts_only_in_available() {
        let now = Instant::now();
        let mut n = nodes(8000);
        n.record("n1", Ok(sample(100, 400, &[])), now);
        let r = n.report(&[], now)[0].clone();
        assert_eq!((r.free_bytes, r.available_bytes), (100 * M, 500 * M));
    }

    #[test]
    fn an_unsampled_or_failing_node_offers_nothing() {
        let now = Instant::now();
        let mut n = nodes(800);
        assert_eq!(n.stale(now, Duration::from_secs(1)), ["n1"]);
        assert_eq!(n.report(&[], now)[0].free_bytes, 0);
        n.record("n1", Ok(sample(1000, 0, &[])), now);
        assert!(n.stale(now, Duration::from_secs(1)).is_empty());
        n.record("n1", Err("unreachable".into()), now);
        let r = n.report(&[], now)[0].clone();
        assert_eq!((r.free_bytes, r.error.as_deref()), (0, Some("unreachable")));
    }
}
