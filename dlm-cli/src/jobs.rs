//! The user's DLM-WAN commands: `dlm submit` (a program and its files to the WAN manager, then
//! its output as it runs), `dlm jobs`, `dlm fetch` and `dlm cancel`, through `dlm_wan::client`.
//!
//! `dlm submit` packs the job's bundle (`dlm_wan::bundle`), submits it and follows the job: it
//! polls the job and its two logs every [`POLL`], prints a line on stderr when the job's place
//! changes (queued, staging, running where), copies only the logs' new bytes (by offset) to its
//! own stdout and stderr, and at the end exits as the job did. Ctrl-C detaches from the job; it
//! does not cancel it (a batch job outlives its terminal: `dlm cancel` ends it).

use crate::pool::{name, row, table};
use anyhow::{anyhow, bail};
use dlm_units::Bytes;
use dlm_wan::bundle;
use dlm_wan::client::{Address, ClientError, Stream, WanClient};
use dlm_wan::proto::{JobId, JobSpec, JobState, JobStatus, Mode, Place, Placement, Program, Through};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often `dlm submit` asks after its job.
const POLL: Duration = Duration::from_millis(300);
/// How long `dlm submit` keeps asking a WAN manager that does not answer.
const LOST_LIMIT: Duration = Duration::from_secs(60);
/// `dlm submit`'s exit status when Ctrl-C detached it (128 + SIGINT, as a shell reports it).
const DETACHED: u8 = 130;

/// What `dlm submit` was asked to run.
#[derive(Debug, Clone)]
pub struct Submission {
    pub memory_bytes: u64,
    pub user: Option<String>,
    pub mode: Mode,
    pub inputs: Vec<PathBuf>,
    pub outputs: Vec<String>,
    /// PROGRAM is a C source that dlmcc builds on the node.
    pub dlmcc: bool,
    pub cflags: Vec<String>,
    pub detach: bool,
    /// Where the user chose to run it, if they did.
    pub place: Option<Place>,
    pub program: PathBuf,
    pub args: Vec<String>,
}

/// `dlm submit`: the job's exit status when it is followed to its end.
pub fn submit(client: &WanClient, submission: &Submission) -> anyhow::Result<ExitCode> {
    let (spec, files) = job_spec(submission)?;
    let bundle = bundle::pack(&spec, &files)?;
    let job = match client.submit(&bundle) {
        Err(ClientError::Refused { message, .. }) => bail!("the WAN manager refused the job: {message}"),
        result => result?,
    };
    if submission.detach {
        println!("{}", job.id);
        return Ok(ExitCode::SUCCESS);
    }
    catch_sigint()?;
    let (mut stdout, mut stderr) = (io::stdout(), io::stderr());
    let mut terminal =
        Terminal { out: &mut stdout, err: &mut stderr, poll: POLL, lost_limit: LOST_LIMIT, stop: &interrupted };
    Ok(ExitCode::from(follow(client, job, &mut terminal)?))
}

/// The job's description and the local files of its bundle (the program, then the inputs).
fn job_spec(s: &Submission) -> anyhow::Result<(JobSpec, Vec<PathBuf>)> {
    let program_name = base_name(&s.program)?;
    let program = if s.dlmcc {
        if s.program.extension().is_none_or(|e| e != "c") {
            bail!("{}: with --dlmcc, PROGRAM is the C source the node builds (a `.c` file)", s.program.display());
        }
        match fs::metadata(&s.program) {
            Err(e) => bail!("cannot read the C source {}: {e}", s.program.display()),
            Ok(m) if !m.is_file() => {
                bail!("{} is not a file; with --dlmcc, PROGRAM is one C source", s.program.display())
            }
            Ok(_) => {}
        }
        let name = program_name.strip_suffix(".c").unwrap_or(&program_name).to_string();
        Program::Dlmcc { sources: vec![program_name], cflags: s.cflags.clone(), name }
    } else {
        match fs::metadata(&s.program) {
            Err(e) => bail!(
                "cannot find the program {}: {e}; give the path of an executable here (`./sim`), or a C source with \
                 --dlmcc",
                s.program.display()
            ),
            Ok(m) if !m.is_file() || m.permissions().mode() & 0o111 == 0 => bail!(
                "{} is not an executable file; make it one (`chmod +x`), or give a C source with --dlmcc",
                s.program.display()
            ),
            Ok(_) => {}
        }
        Program::Executable { file: program_name }
    };
    if let Some(output) = s.outputs.iter().find(|o| !bundle::is_flat_name(o)) {
        bail!(
            "--out {output}: name a file that the program writes in its own directory (letters, digits and `._+-`, no \
             `/`)"
        );
    }
    let inputs = s.inputs.iter().map(|p| base_name(p)).collect::<anyhow::Result<Vec<_>>>()?;
    let spec = JobSpec {
        program,
        args: s.args.clone(),
        memory_bytes: s.memory_bytes,
        mode: s.mode,
        user: s.user.clone(),
        inputs,
        outputs: s.outputs.clone(),
        place: s.place.clone(),
    };
    let mut files = vec![s.program.clone()];
    files.extend(s.inputs.iter().cloned());
    Ok((spec, files))
}

fn base_name(path: &Path) -> anyhow::Result<String> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(String::from)
        .ok_or_else(|| anyhow!("{}: not the path of a file", path.display()))
}

/// Set by SIGINT while `dlm submit` follows its job.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// From here on, Ctrl-C sets [`INTERRUPTED`] instead of ending the process.
fn catch_sigint() -> io::Result<()> {
    let handler: extern "C" fn(libc::c_int) = on_sigint;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    let previous = unsafe { libc::signal(libc::SIGINT, handler as libc::sighandler_t) };
    if previous == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// What following a job asks of the WAN manager (a trait so that the tests can script it).
pub trait JobSource {
    fn job(&self, id: JobId) -> Result<JobStatus, ClientError>;
    fn log(&self, id: JobId, stream: Stream, offset: u64) -> Result<Vec<u8>, ClientError>;
}

impl JobSource for WanClient {
    fn job(&self, id: JobId) -> Result<JobStatus, ClientError> {
        WanClient::job(self, id)
    }

    fn log(&self, id: JobId, stream: Stream, offset: u64) -> Result<Vec<u8>, ClientError> {
        WanClient::log(self, id, stream, offset)
    }
}

/// Where a followed job's output goes, and how it is followed.
struct Terminal<'a> {
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
    poll: Duration,
    /// How long the manager may not answer before `dlm submit` gives up on it.
    lost_limit: Duration,
    /// Whether to detach now (Ctrl-C).
    stop: &'a dyn Fn() -> bool,
}

/// Follows `job` to its end (or until `stop`): its place on stderr as it changes, its logs'
/// new bytes to `out` and `err`; returns the exit status for `dlm submit`.
fn follow(source: &dyn JobSource, mut job: JobStatus, t: &mut Terminal<'_>) -> anyhow::Result<u8> {
    let id = job.id;
    let mut shown = None;
    let mut offsets = [0u64; 2];
    let mut lost: Option<Instant> = None;
    loop {
        let (key, line) = progress(&job);
        if !job.state.is_final() && shown.as_ref() != Some(&key) {
            writeln!(t.err, "dlm submit: {line}")?;
            shown = Some(key);
        }
        match copy_logs(source, &job, &mut offsets, t) {
            Ok(()) if job.state.is_final() => return ending(&job, t.err),
            Ok(()) => {}
            Err(CopyError::Manager(e)) => keep_trying(e, id, &mut lost, t)?,
            Err(CopyError::Terminal(stream, e)) => {
                bail!(
                    "cannot write the job's {} here: {e}; job {id} continues: see `dlm jobs`, `dlm fetch {id}`",
                    stream.name()
                )
            }
        }
        let deadline = Instant::now() + t.poll;
        while Instant::now() < deadline {
            if (t.stop)() {
                writeln!(t.err, "dlm submit: job {id} continues; see `dlm jobs`, `dlm fetch {id}`")?;
                return Ok(DETACHED);
            }
            std::thread::sleep(t.poll.min(Duration::from_millis(50)));
        }
        match source.job(id) {
            Ok(now) => {
                if lost.take().is_some() {
                    writeln!(t.err, "dlm submit: the WAN manager answers again")?;
                }
                job = now;
            }
            Err(e) => keep_trying(e, id, &mut lost, t)?,
        }
    }
}

/// After a failed call: keeps going while the failure may pass (the manager unreachable,
/// for at most the terminal's `lost_limit`); an error otherwise.
fn keep_trying(e: ClientError, id: JobId, lost: &mut Option<Instant>, t: &mut Terminal<'_>) -> anyhow::Result<()> {
    let passing = matches!(
        e,
        ClientError::Connect { .. }
            | ClientError::Io { .. }
            | ClientError::NoAnswer { .. }
            | ClientError::NotHttp { .. }
    );
    if !passing {
        return Err(e.into());
    }
    let since = *lost.get_or_insert_with(|| {
        let _ = writeln!(t.err, "dlm submit: {e}; asking again");
        Instant::now()
    });
    if since.elapsed() >= t.lost_limit {
        bail!("{e}; job {id} may still run: see `dlm jobs` and `dlm fetch {id}` once the WAN manager answers");
    }
    Ok(())
}

/// Why the logs could not be copied.
enum CopyError {
    Manager(ClientError),
    /// The terminal (or pipe) does not take the stream's bytes.
    Terminal(Stream, io::Error),
}

/// Copies what the job's logs hold beyond `offsets` to the terminal.
fn copy_logs(
    source: &dyn JobSource,
    job: &JobStatus,
    offsets: &mut [u64; 2],
    t: &mut Terminal<'_>,
) -> Result<(), CopyError> {
    for (i, (stream, kept)) in
        [(Stream::Stdout, job.stdout_bytes), (Stream::Stderr, job.stderr_bytes)].into_iter().enumerate()
    {
        while offsets[i] < kept {
            let bytes = source.log(job.id, stream, offsets[i]).map_err(CopyError::Manager)?;
            if bytes.is_empty() {
                break;
            }
            offsets[i] += bytes.len() as u64;
            let to: &mut dyn Write = if stream == Stream::Stdout { &mut *t.out } else { &mut *t.err };
            to.write_all(&bytes).and_then(|()| to.flush()).map_err(|e| CopyError::Terminal(stream, e))?;
        }
    }
    Ok(())
}

/// The line that tells where the job is, and its key: the line without the reason (a new
/// line prints when the key changes, not with each new number in a reason).
fn progress(job: &JobStatus) -> (String, String) {
    let id = job.id;
    let key = match (job.state, &job.placement) {
        (JobState::Queued, _) => match job.queue_position {
            Some(p) => format!("job {id} queued (position {p})"),
            None => format!("job {id} queued"),
        },
        (state, Some(p)) => format!("job {id} {} on {}/{} ({})", name(&state), p.cluster, p.node, through(p)),
        (state, None) => format!("job {id} {}", name(&state)),
    };
    let line = match (&job.reason, job.state) {
        (Some(reason), JobState::Queued) => format!("{key}: {reason}"),
        _ => key.clone(),
    };
    (key, line)
}

/// `local memory`, or `pool: 8 GiB local, 24 GiB on mem01,mem02; local ratio 0.25`.
fn through(p: &Placement) -> String {
    match p.through {
        Through::LocalMemory => "local memory".into(),
        Through::Pool => {
            let on =
                if p.servers.is_empty() { "in the pool".to_string() } else { format!("on {}", p.servers.join(",")) };
            format!(
                "pool: {} local, {} {on}; local ratio {:.2}",
                Bytes(p.local_bytes),
                Bytes(p.pool_bytes),
                p.local_ratio
            )
        }
    }
}

/// The last line for a job that ended, and `dlm submit`'s exit status: the job's own exit code
/// when it has one (0 to 255), else 1.
fn ending(job: &JobStatus, err: &mut dyn Write) -> anyhow::Result<u8> {
    let id = job.id;
    let reason = job.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
    let (line, code) = match job.state {
        JobState::Done => {
            let fetch =
                if job.outputs.is_empty() { String::new() } else { format!("; `dlm fetch {id}` gets its outputs") };
            match job.exit_code.and_then(|c| u8::try_from(c).ok()) {
                Some(code) => (format!("job {id} done, exit code {code}{fetch}"), code),
                None => {
                    let how =
                        job.exit_code.map_or("without an exit code".to_string(), |c| format!("with exit code {c}"));
                    (format!("job {id} ended {how}{reason}{fetch}"), 1)
                }
            }
        }
        JobState::Failed => {
            (format!("job {id} failed: {}", job.reason.as_deref().unwrap_or("the WAN manager gave no reason")), 1)
        }
        _ => (format!("job {id} was cancelled{reason}"), 1),
    };
    writeln!(err, "dlm submit: {line}")?;
    Ok(code)
}

/// `dlm jobs [--json]`.
pub fn jobs(client: &WanClient, json: bool) -> anyhow::Result<()> {
    let jobs = client.jobs()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&jobs)?);
    } else {
        print!("{}", render_jobs(client.address(), &jobs));
    }
    Ok(())
}

/// One line per job.
fn render_jobs(address: &Address, jobs: &[JobStatus]) -> String {
    if jobs.is_empty() {
        return format!("no jobs at the WAN manager at {address}\n");
    }
    let mut rows = vec![row(&[
        "ID",
        "STATE",
        "USER",
        "MEMORY",
        "MODE",
        "CLUSTER/NODE",
        "SERVERS",
        "LOCAL",
        "EXIT/REASON",
        "COMMAND",
    ])];
    rows.extend(jobs.iter().map(job_row));
    table(&rows)
}

fn job_row(job: &JobStatus) -> Vec<String> {
    let placement = job.placement.as_ref();
    let servers = placement.filter(|p| !p.servers.is_empty()).map_or("-".into(), |p| p.servers.join(","));
    let outcome = match (job.state, job.exit_code, &job.reason) {
        (JobState::Done, Some(code), _) => code.to_string(),
        (JobState::Queued, _, reason) => {
            let position = job.queue_position.map(|p| format!("position {p}"));
            [position, reason.clone()].into_iter().flatten().collect::<Vec<_>>().join(": ")
        }
        (_, _, Some(reason)) => reason.clone(),
        _ => String::new(),
    };
    vec![
        job.id.to_string(),
        name(&job.state),
        job.user.clone(),
        Bytes(job.memory_bytes).to_string(),
        name(&job.mode),
        placement.map_or("-".into(), |p| format!("{}/{}", p.cluster, p.node)),
        servers,
        placement.map_or("-".into(), |p| format!("{:.0}%", p.local_ratio * 100.0)),
        if outcome.is_empty() { "-".into() } else { outcome },
        job.command.join(" "),
    ]
}

/// `dlm fetch JOB [--dir DIR]`: the job's outputs, and its whole stdout and stderr as
/// `job-N.stdout` and `job-N.stderr`, into `dir`; prints each path written.
pub fn fetch(client: &WanClient, id: JobId, dir: &Path) -> anyhow::Result<()> {
    let job = client.job(id)?;
    if !job.state.is_final() {
        bail!(
            "job {id} is {}: its outputs and logs come back once it has ended (`dlm jobs` shows when)",
            name(&job.state)
        );
    }
    fs::create_dir_all(dir).map_err(|e| anyhow!("cannot make {}: {e}", dir.display()))?;
    let outputs = client.outputs(id).map_err(anyhow::Error::from).and_then(|archive| {
        let written = bundle::unpack_outputs(&archive, dir)?;
        Ok(written)
    });
    for path in outputs.as_deref().unwrap_or_default() {
        println!("{}", path.display());
    }
    for stream in [Stream::Stdout, Stream::Stderr] {
        let bytes = client.log(id, stream, 0)?;
        let path = dir.join(format!("job-{id}.{}", stream.name()));
        fs::write(&path, bytes).map_err(|e| anyhow!("cannot write {}: {e}", path.display()))?;
        println!("{}", path.display());
    }
    outputs.map(drop)
}

/// `dlm cancel JOB`: prints the job's state after.
pub fn cancel(client: &WanClient, id: JobId) -> anyhow::Result<()> {
    let job = client.cancel(id)?;
    let reason = job.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
    match job.state {
        JobState::Cancelled => println!("job {id}: cancelled{reason}"),
        state if state.is_final() => println!("job {id}: {} already{reason}; nothing to cancel", name(&state)),
        state => println!("job {id}: {}{reason}; it is being cancelled", name(&state)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    const G: u64 = 1 << 30;

    fn job(state: JobState) -> JobStatus {
        JobStatus {
            id: JobId(7),
            user: "alice".into(),
            uid: 1001,
            state,
            reason: None,
            exit_code: None,
            memory_bytes: 32 * G,
            mode: Mode::LocalFirst,
            command: vec!["sim".into(), "-n".into(), "64".into()],
            outputs: vec![],
            placement: None,
            queue_position: None,
            submitted: 1000,
            started: None,
            ended: None,
            stdout_bytes: 0,
            stderr_bytes: 0,
        }
    }

    fn pool_placement(servers: &[&str]) -> Placement {
        Placement {
            cluster: "tsubame".into(),
            node: "node03".into(),
            through: Through::Pool,
            local_bytes: 8 * G,
            pool_bytes: 24 * G,
            local_ratio: 0.25,
            servers: servers.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// A WAN manager that answers `job` with each status in turn (the last one again once they
    /// are used up) and `log` from two growing logs.
    struct Script {
        statuses: RefCell<Vec<Result<JobStatus, ClientError>>>,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
        log_calls: RefCell<Vec<(Stream, u64)>>,
    }

    impl JobSource for Script {
        fn job(&self, _: JobId) -> Result<JobStatus, ClientError> {
            let mut statuses = self.statuses.borrow_mut();
            if statuses.len() > 1 {
                return statuses.remove(0);
            }
            Ok(statuses[0].as_ref().expect("a script ends with a status").clone())
        }

        fn log(&self, _: JobId, stream: Stream, offset: u64) -> Result<Vec<u8>, ClientError> {
            self.log_calls.borrow_mut().push((stream, offset));
            let log = if stream == Stream::Stdout { &self.stdout } else { &self.stderr };
            // At most 4 bytes a call: the offsets must carry the copy on.
            let start = (offset as usize).min(log.len());
            Ok(log[start..(start + 4).min(log.len())].to_vec())
        }
    }

    /// Follows `first` through `script`; returns the exit status, stdout and stderr.
    fn run(script: &Script, first: JobStatus, stop_after: usize) -> (u8, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let polls = std::cell::Cell::new(0);
        let stop = || {
            polls.set(polls.get() + 1);
            polls.get() > stop_after
        };
        let mut t = Terminal {
            out: &mut out,
            err: &mut err,
            poll: Duration::from_millis(1),
            lost_limit: Duration::from_secs(60),
            stop: &stop,
        };
        let code = follow(script, first, &mut t).unwrap();
        (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
    }

    fn script(statuses: Vec<Result<JobStatus, ClientError>>, stdout: &str, stderr: &str) -> Script {
        Script {
            statuses: RefCell::new(statuses),
            stdout: stdout.as_bytes().to_vec(),
            stderr: stderr.as_bytes().to_vec(),
            log_calls: RefCell::new(Vec::new()),
        }
    }

    #[test]
    fn follows_a_job_from_the_queue_to_its_exit_code() {
        let mut queued = job(JobState::Queued);
        queued.queue_position = Some(2);
        queued.reason = Some("waiting for 32 GiB".into());
        let mut still = queued.clone();
        still.reason = Some("waiting for 32 GiB (31 GiB free)".into());
        let mut next = queued.clone();
        next.queue_position = Some(1);
        let mut running = job(JobState::Running);
        running.placement = Some(pool_placement(&[]));
        running.stdout_bytes = 6;
        let mut joined = running.clone();
        joined.placement = Some(pool_placement(&["mem01", "mem02"]));
        joined.stdout_bytes = 11;
        joined.stderr_bytes = 5;
        let mut done = joined.clone();
        done.state = JobState::Done;
        done.exit_code = Some(3);
        done.stdout_bytes = 17;
        done.outputs = vec!["result.dat".into()];
        let script =
            script(vec![Ok(still), Ok(next), Ok(running), Ok(joined), Ok(done)], "hello\nworld\nbye!\n", "warn\n");
        let (code, out, err) = run(&script, queued, usize::MAX);
        assert_eq!(code, 3);
        assert_eq!(out, "hello\nworld\nbye!\n");
        assert_eq!(
            err,
            "\
dlm submit: job 7 queued (position 2): waiting for 32 GiB
dlm submit: job 7 queued (position 1): waiting for 32 GiB
dlm submit: job 7 running on tsubame/node03 (pool: 8 GiB local, 24 GiB in the pool; local ratio 0.25)
dlm submit: job 7 running on tsubame/node03 (pool: 8 GiB local, 24 GiB on mem01,mem02; local ratio 0.25)
warn
dlm submit: job 7 done, exit code 3; `dlm fetch 7` gets its outputs
"
        );
        // Only new bytes were asked for: each call starts where the last one ended.
        let calls = script.log_calls.borrow();
        let stdout: Vec<u64> = calls.iter().filter(|c| c.0 == Stream::Stdout).map(|c| c.1).collect();
        assert_eq!(stdout, [0, 4, 8, 12, 16]);
    }

    #[test]
    fn failed_cancelled_and_signalled_jobs_exit_1() {
        let mut failed = job(JobState::Failed);
        failed.reason = Some("dlmcc: sim.c:3: error: expected ';'".into());
        let (code, _, err) = run(&script(vec![Ok(failed.clone())], "", ""), failed, usize::MAX);
        assert_eq!((code, err.as_str()), (1, "dlm submit: job 7 failed: dlmcc: sim.c:3: error: expected ';'\n"));

        let mut cancelled = job(JobState::Cancelled);
        cancelled.reason = Some("by alice".into());
        let (code, _, err) = run(&script(vec![Ok(cancelled.clone())], "", ""), cancelled, usize::MAX);
        assert_eq!((code, err.as_str()), (1, "dlm submit: job 7 was cancelled: by alice\n"));

        let mut killed = job(JobState::Done);
        killed.reason = Some("killed by signal 9".into());
        let (code, _, err) = run(&script(vec![Ok(killed.clone())], "", ""), killed, usize::MAX);
        assert_eq!((code, err.as_str()), (1, "dlm submit: job 7 ended without an exit code: killed by signal 9\n"));

        let mut odd = job(JobState::Done);
        odd.exit_code = Some(-1);
        let (code, _, err) = run(&script(vec![Ok(odd.clone())], "", ""), odd, usize::MAX);
        assert_eq!((code, err.as_str()), (1, "dlm submit: job 7 ended with exit code -1\n"));
    }

    #[test]
    fn ctrl_c_detaches_without_cancelling() {
        let mut running = job(JobState::Running);
        running.placement = Some(Placement { through: Through::LocalMemory, ..pool_placement(&[]) });
        let script = script(vec![Ok(running.clone())], "", "");
        let (code, _, err) = run(&script, running, 3);
        assert_eq!(code, 130);
        assert_eq!(
            err,
            "dlm submit: job 7 running on tsubame/node03 (local memory)\ndlm submit: job 7 continues; see `dlm jobs`, \
             `dlm fetch 7`\n"
        );
    }

    #[test]
    fn an_unreachable_manager_is_asked_again() {
        let lost = || {
            Err(ClientError::Connect {
                service: "WAN manager",
                address: Address::Tcp("wan1:7460".into()),
                source: io::Error::from(io::ErrorKind::ConnectionRefused),
            })
        };
        let mut done = job(JobState::Done);
        done.exit_code = Some(0);
        let script = script(vec![lost(), lost(), Ok(done)], "", "");
        let (code, _, err) = run(&script, job(JobState::Staging), usize::MAX);
        assert_eq!(code, 0);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines[0], "dlm submit: job 7 staging");
        assert!(
            lines[1].starts_with("dlm submit: cannot reach the WAN manager at wan1:7460: ")
                && lines[1].ends_with("; asking again"),
            "{err}"
        );
        assert_eq!(lines[2..], ["dlm submit: the WAN manager answers again", "dlm submit: job 7 done, exit code 0"]);
    }

    fn submission(program: PathBuf) -> Submission {
        Submission {
            memory_bytes: 4 * G,
            user: None,
            mode: Mode::Equalize,
            inputs: vec![],
            outputs: vec!["result.dat".into()],
            dlmcc: false,
            cflags: vec![],
            detach: false,
            place: None,
            program,
            args: vec!["-n".into(), "64".into()],
        }
    }

    #[test]
    fn a_submission_becomes_a_spec_and_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let sim = dir.path().join("sim");
        fs::write(&sim, b"#!/bin/sh\n").unwrap();
        fs::write(dir.path().join("input.dat"), b"1\n").unwrap();
        let mut s = submission(sim.clone());
        s.inputs = vec![dir.path().join("input.dat")];
        let err = job_spec(&s).unwrap_err().to_string();
        assert!(
            err.ends_with("is not an executable file; make it one (`chmod +x`), or give a C source with --dlmcc"),
            "{err}"
        );
        fs::set_permissions(&sim, fs::Permissions::from_mode(0o755)).unwrap();
        let (spec, files) = job_spec(&s).unwrap();
        assert_eq!(spec.program, Program::Executable { file: "sim".into() });
        assert_eq!(
            (spec.inputs, spec.outputs, spec.mode),
            (vec!["input.dat".to_string()], vec!["result.dat".to_string()], Mode::Equalize)
        );
        assert_eq!(files, [sim.clone(), dir.path().join("input.dat")]);

        s.outputs = vec!["out/result.dat".into()];
        assert!(job_spec(&s).unwrap_err().to_string().starts_with("--out out/result.dat: "));
        let err = job_spec(&submission(dir.path().join("absent"))).unwrap_err().to_string();
        assert!(err.starts_with("cannot find the program "), "{err}");

        let source = dir.path().join("himeno.c");
        fs::write(&source, b"int main(void) { return 0; }\n").unwrap();
        let mut s = submission(source);
        s.dlmcc = true;
        s.cflags = vec!["-DN=64".into(), "-O3".into()];
        let (spec, _) = job_spec(&s).unwrap();
        assert_eq!(
            spec.program,
            Program::Dlmcc {
                sources: vec!["himeno.c".into()],
                cflags: vec!["-DN=64".into(), "-O3".into()],
                name: "himeno".into()
            }
        );
        s.program = sim;
        assert!(job_spec(&s).unwrap_err().to_string().contains("with --dlmcc, PROGRAM is the C source"));
    }

    #[test]
    fn lists_jobs() {
        let mut queued = job(JobState::Queued);
        queued.id = JobId(8);
        queued.queue_position = Some(1);
        queued.reason = Some("no node has 32 GiB free".into());
        let mut done = job(JobState::Done);
        done.placement = Some(pool_placement(&["mem01", "mem02"]));
        done.exit_code = Some(0);
        let mut failed = job(JobState::Failed);
        failed.id = JobId(9);
        failed.mode = Mode::Equalize;
        failed.reason = Some("node03 lost".into());
        let text = render_jobs(&Address::Tcp("wan1:7460".into()), &[done, queued, failed]);
        let expected = "\
ID  STATE   USER   MEMORY  MODE         CLUSTER/NODE    SERVERS      LOCAL  EXIT/REASON                          COMMAND
7   done    alice  32 GiB  local-first  tsubame/node03  mem01,mem02  25%    0                                    sim -n 64
8   queued  alice  32 GiB  local-first  -               -            -      position 1: no node has 32 GiB free  sim -n 64
9   failed  alice  32 GiB  equalize     -               -            -      node03 lost                          sim -n 64
";
        assert_eq!(text, expected);
        assert_eq!(render_jobs(&Address::Tcp("wan1:7460".into()), &[]), "no jobs at the WAN manager at wan1:7460\n");
    }
}
