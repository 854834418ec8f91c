//! Runs one of the manager's jobs on its compute node, step after step, each a shell line on
//! the node through the remote shell (`remote`): unpack its files into its directory, build it
//! (dlmcc), run it with its streams coming back here, read its exit status, the last line of
//! its live statistics and the outputs it wrote, remove its directory. The job's record
//! (`jobs`) follows every step.
//!
//! The running program is tied to this manager by its standard input: the line on the node
//! waits for the program and, beside it, reads the remote shell's input; that read ends when
//! the manager closes it (a cancel) or dies (its end of the pipe goes with it), and the
//! program is then ended. So neither a cancel nor a dead manager leaves a program behind, with
//! ssh as with any other remote shell, and nothing of DLM's runs on the node between jobs.

use crate::jobs::{NodeJobs, LIVE_STATS, OUTPUTS, STDERR, STDOUT};
use crate::proto::{NodeJobId, NodeJobState, StatLine};
use crate::remote::{command_line, on_host, shell_quote};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

/// How long a cancelled program has after SIGTERM before SIGKILL (on the node).
const TERM_GRACE_TENTHS: u32 = 100;

/// How long the steps around the run (unpack, status, outputs, removal) may take.
const STEP_LIMIT: Duration = Duration::from_secs(120);

/// Everything the steps need to know about a job, fixed when it starts.
#[derive(Debug, Clone)]
pub struct Plan {
    pub id: NodeJobId,
    pub node: String,
    /// The account to switch to on the node (`runuser`), when not the manager's own.
    pub switch_to: Option<String>,
    /// Its directory on the node.
    pub dir: String,
    /// `NAME=VALUE` for the program and its build.
    pub env: Vec<String>,
    pub build: Option<Vec<String>>,
    pub command: Vec<String>,
    pub outputs: Vec<String>,
    /// Its logs and outputs here.
    pub spool: PathBuf,
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Exited { code: i32, missing: Vec<String> },
    Failed(String),
    Cancelled(String),
}

/// Runs the job to its end and records how it ended; never panics into the manager.
pub async fn run(jobs: Arc<Mutex<NodeJobs>>, plan: Plan, files: Vec<u8>, mut cancel: watch::Receiver<bool>) {
    let outcome = steps(&jobs, &plan, files, &mut cancel).await;
    if let Err(e) = remove_directory(&plan).await {
        eprintln!("dlm pool manager: job {}: cannot remove {} on {}: {e}", plan.id, plan.dir, plan.node);
    }
    let mut table = jobs.lock().unwrap_or_else(|p| p.into_inner());
    if let Ok(job) = table.get_mut(&plan.id) {
        match outcome {
            Outcome::Exited { code, missing } => {
                job.state = NodeJobState::Done;
                job.exit_code = Some(code);
                job.missing_outputs = missing;
            }
            Outcome::Failed(reason) => {
                job.state = NodeJobState::Failed;
                job.reason = Some(reason);
            }
            Outcome::Cancelled(reason) => {
                job.state = NodeJobState::Cancelled;
                job.reason = Some(reason);
            }
        }
    }
}

async fn steps(jobs: &Mutex<NodeJobs>, plan: &Plan, files: Vec<u8>, cancel: &mut watch::Receiver<bool>) -> Outcome {
    let node = &plan.node;
    let unpack = format!("umask 077 && mkdir -p {dir} && cd {dir} && tar xf -", dir = shell_quote(&plan.dir));
    match step(plan, &unpack, Input::Bytes(files), Sink::Discard, cancel, Some(STEP_LIMIT)).await {
        Ok(Ran { status, .. }) if status.success() => {}
        Ok(ran) => return failure(format!("cannot unpack its files on {node}"), ran),
        Err(e) => return e,
    }
    if let Some(build) = &plan.build {
        set_state(jobs, &plan.id, NodeJobState::Building);
        let line = format!("cd {} && exec {} {}", shell_quote(&plan.dir), clean_env(plan), command_line(build));
        match step(plan, &line, Input::Null, Sink::Stderr, cancel, None).await {
            Ok(Ran { status, .. }) if status.success() => {}
            Ok(ran) => {
                return failure(
                    format!("its build (`{}`) failed on {node}; see its standard error", build.join(" ")),
                    ran,
                )
            }
            Err(e) => return e,
        }
    }
    set_state(jobs, &plan.id, NodeJobState::Running);
    let ran = step(plan, &watched_run_line(plan), Input::Held, Sink::Streams, cancel, None).await;
    set_state(jobs, &plan.id, NodeJobState::Collecting);
    let cancelled = *cancel.borrow();
    let status = match exit_status_and_missing(plan).await {
        Ok((code, missing, last_stats)) => {
            if let Some(line) = last_stats {
                record_stats(jobs, &plan.id, line);
            }
            (code, missing)
        }
        Err(e) if cancelled => return Outcome::Cancelled(format!("cancelled ({e})")),
        Err(e) => {
            let how = ran.map_or_else(|_| String::new(), |r| format!(" (the remote shell {})", describe(r.status)));
            return Outcome::Failed(format!("lost on {node}: {e}{how}"));
        }
    };
    if cancelled {
        return Outcome::Cancelled("cancelled while it ran".into());
    }
    let (code, missing) = status;
    if let Err(e) = fetch_outputs(plan, &missing).await {
        return Outcome::Failed(format!(
            "it exited with {code}, but its outputs could not be fetched from {node}: {e}"
        ));
    }
    Outcome::Exited { code, missing }
}

/// The program in its directory, its pid noted, ended when the manager's pipe closes (see the
/// module's doc); its exit status is left in `exit`. It leads a session of its own (`setsid`),
/// so that the end reaches every process it started (a shell's children, MPI's daemons).
fn watched_run_line(plan: &Plan) -> String {
    format!(
        "cd {dir} || exit 97
exec 3<&0
setsid {env} {command} 3<&- </dev/null &
child=$!
echo $child >pid
(read -r _ <&3; kill -TERM -$child 2>/dev/null; i=0
 while kill -0 -$child 2>/dev/null && [ $i -lt {grace} ]; do sleep 0.1; i=$((i+1)); done
 kill -KILL -$child 2>/dev/null) >/dev/null 2>&1 &
watcher=$!
exec 3<&-
wait $child
status=$?
echo $status >exit.tmp && mv exit.tmp exit
kill $watcher 2>/dev/null
exit $status",
        dir = shell_quote(&plan.dir),
        env = clean_env(plan),
        command = command_line(&plan.command),
        grace = TERM_GRACE_TENTHS,
    )
}

/// `env -i` with the job's variables and the login's own HOME, USER, LOGNAME, SHELL and
/// TMPDIR (expanded on the node): what a program started by ssh would see, and nothing of the
/// manager's own environment, even when the node is the manager's own host.
fn clean_env(plan: &Plan) -> String {
    let login = r#"HOME="$HOME" USER="$USER" LOGNAME="$LOGNAME" SHELL="${SHELL:-/bin/sh}" TMPDIR="${TMPDIR:-/tmp}""#;
    format!("env -i {login} {}", command_line(&plan.env))
}

/// Reads `exit`, the last line of the live statistics (the one written at shutdown, which the
/// node's samples may have missed) and which outputs are missing: `(status, missing, line)`.
async fn exit_status_and_missing(plan: &Plan) -> Result<(i32, Vec<String>, Option<StatLine>), String> {
    let mut line = format!(
        "cd {} && cat exit && echo @stats && {{ tail -n 1 {LIVE_STATS} 2>/dev/null; true; }} && echo @missing",
        shell_quote(&plan.dir)
    );
    for output in &plan.outputs {
        let name = shell_quote(output);
        line.push_str(&format!(" && {{ [ -f {name} ] || echo {name}; }}"));
    }
    let ran = step_quiet(plan, &line).await?;
    if !ran.status.success() {
        return Err(format!("no exit status was left ({})", describe(ran.status)));
    }
    let text = String::from_utf8_lossy(&ran.stdout);
    let (code, rest) = text.split_once("@stats").ok_or("its status is unreadable")?;
    let (stats, missing) = rest.split_once("@missing").ok_or("its status is unreadable")?;
    let code = code.trim().parse().map_err(|_| format!("its status reads `{}`", code.trim()))?;
    let last_stats = serde_json::from_str(stats.trim()).ok();
    Ok((code, missing.lines().filter(|l| !l.is_empty()).map(str::to_string).collect(), last_stats))
}

/// Fetches the outputs the program wrote, as one tar archive, into the spool.
async fn fetch_outputs(plan: &Plan, missing: &[String]) -> Result<(), String> {
    let written: Vec<&String> = plan.outputs.iter().filter(|o| !missing.contains(o)).collect();
    let archive = if written.is_empty() {
        Vec::new()
    } else {
        let line = format!("cd {} && tar cf - -- {}", shell_quote(&plan.dir), command_line(&written));
        let ran = step_quiet(plan, &line).await?;
        if !ran.status.success() {
            return Err(format!("tar {}", describe(ran.status)));
        }
        ran.stdout
    };
    std::fs::write(plan.spool.join(OUTPUTS), archive).map_err(|e| e.to_string())
}

async fn remove_directory(plan: &Plan) -> Result<(), String> {
    let ran = step_quiet(plan, &format!("rm -rf {}", shell_quote(&plan.dir))).await?;
    if ran.status.success() {
        Ok(())
    } else {
        Err(describe(ran.status))
    }
}

fn record_stats(jobs: &Mutex<NodeJobs>, id: &NodeJobId, line: StatLine) {
    let mut table = jobs.lock().unwrap_or_else(|p| p.into_inner());
    table.record_stats([(id.clone(), vec![line])].into());
}

fn set_state(jobs: &Mutex<NodeJobs>, id: &NodeJobId, state: NodeJobState) {
    let mut table = jobs.lock().unwrap_or_else(|p| p.into_inner());
    if let Ok(job) = table.get_mut(id) {
        job.state = state;
    }
}

fn failure(what: String, ran: Ran) -> Outcome {
    let detail = String::from_utf8_lossy(&ran.stdout).trim().to_string();
    let detail = if detail.is_empty() { String::new() } else { format!(": {detail}") };
    Outcome::Failed(format!("{what} ({}){detail}", describe(ran.status)))
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(255), _) => "exit 255: the remote shell could not reach the node".into(),
        (Some(code), _) => format!("exit {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => "ended".into(),
    }
}

/// What a step's remote shell is given on its standard input.
enum Input {
    Null,
    Bytes(Vec<u8>),
    /// A pipe kept open while the step runs and closed to cancel it.
    Held,
}

/// Where a step's output goes.
#[derive(Clone, Copy)]
enum Sink {
    Discard,
    /// Both streams to the job's standard error log (a build's output).
    Stderr,
    /// Standard output and error to the job's two logs.
    Streams,
    /// Standard output kept and returned (standard error too, for messages).
    Capture,
}

/// A step that ran to its end.
struct Ran {
    status: ExitStatus,
    /// Captured output (`Sink::Capture`), or standard error (`Sink::Discard`), for messages.
    stdout: Vec<u8>,
}

/// A step that only reads the node, with a time limit.
async fn step_quiet(plan: &Plan, line: &str) -> Result<Ran, String> {
    // Never set: these steps run to their end (the sender must live, or `wait_for` ends).
    let (_never_set, mut never) = watch::channel(false);
    step(plan, line, Input::Null, Sink::Capture, &mut never, Some(STEP_LIMIT)).await.map_err(|outcome| match outcome {
        Outcome::Failed(reason) | Outcome::Cancelled(reason) => reason,
        Outcome::Exited { code, .. } => format!("exit {code}"),
    })
}

/// Runs `line` on the job's node (as the job's user) until it ends, the job is cancelled, or
/// `limit` passes.
async fn step(
    plan: &Plan,
    line: &str,
    input: Input,
    sink: Sink,
    cancel: &mut watch::Receiver<bool>,
    limit: Option<Duration>,
) -> Result<Ran, Outcome> {
    let line = match &plan.switch_to {
        Some(user) => format!("exec runuser -u {} -- sh -c {}", shell_quote(user), shell_quote(line)),
        None => line.to_string(),
    };
    let mut command = tokio::process::Command::from(on_host(&plan.node, &line));
    command.kill_on_drop(true).stdout(Stdio::piped()).stderr(Stdio::piped());
    command.stdin(if matches!(input, Input::Null) { Stdio::null() } else { Stdio::piped() });
    let mut child = command.spawn().map_err(|e| Outcome::Failed(format!("cannot start the remote shell: {e}")))?;
    let mut stdin = child.stdin.take();
    if let Input::Bytes(bytes) = input {
        if let Some(mut pipe) = stdin.take() {
            tokio::spawn(async move {
                let _ = pipe.write_all(&bytes).await;
            });
        }
    }
    let out = tokio::spawn(drain(child.stdout.take(), sink_file(plan, sink, STDOUT)));
    let err = tokio::spawn(drain(child.stderr.take(), sink_file(plan, sink, STDERR)));
    let deadline = async {
        match limit {
            Some(limit) => tokio::time::sleep(limit).await,
            None => std::future::pending().await,
        }
    };
    let cancelled = async {
        // The guard `wait_for` returns must not live across the awaits below.
        let _ = cancel.wait_for(|c| *c).await;
    };
    let status = tokio::select! {
        status = child.wait() => status,
        () = cancelled => {
            match stdin.take() {
                // Closing the pipe ends the program (see the module's doc); wait for that.
                Some(pipe) => { drop(pipe); child.wait().await }
                None => { let _ = child.kill().await; return Err(Outcome::Cancelled("cancelled".into())) }
            }
        }
        () = deadline => {
            let _ = child.kill().await;
            return Err(Outcome::Failed(format!("a step on {} took longer than {} s", plan.node, STEP_LIMIT.as_secs())));
        }
    };
    let status = status.map_err(|e| Outcome::Failed(format!("waiting for the remote shell: {e}")))?;
    let stdout = out.await.unwrap_or_default();
    let stderr = err.await.unwrap_or_default();
    Ok(Ran { status, stdout: if stdout.is_empty() { stderr } else { stdout } })
}

/// The log a stream goes to for `sink`, if any.
fn sink_file(plan: &Plan, sink: Sink, stream: &str) -> Option<PathBuf> {
    match sink {
        Sink::Streams => Some(plan.spool.join(stream)),
        Sink::Stderr => Some(plan.spool.join(STDERR)),
        Sink::Discard | Sink::Capture => None,
    }
}

/// Copies a stream to its log as it comes (appending), or keeps it when it has no log.
async fn drain(stream: Option<impl AsyncRead + Unpin>, log: Option<PathBuf>) -> Vec<u8> {
    let Some(mut stream) = stream else { return Vec::new() };
    let mut kept = Vec::new();
    let mut file = match &log {
        Some(path) => tokio::fs::OpenOptions::new().create(true).append(true).open(path).await.ok(),
        None => None,
    };
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => match file.as_mut() {
                Some(f) => {
                    let _ = f.write_all(&buf[..n]).await;
                    let _ = f.flush().await;
                }
                None => kept.extend_from_slice(&buf[..n]),
            },
        }
    }
    kept
}
