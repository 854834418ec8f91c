//! Live statistics (`DLM_STATS_LIVE=PATH`): a thread of its own appends one JSON line
//! ([`crate::stats::live_line`]) to the file every [`PERIOD`], the first at once and a last one
//! at shutdown, after the pager has stopped. A cluster's manager reads the file's newest lines on
//! each sample of the node, for DLM-WAN's live view of the job.
//!
//! Not the pager's work: the pager never blocks on files and never unwinds. The counters are
//! relaxed atomics, read here without stopping anything. A write that fails is said once on
//! standard error and ends the thread; the program goes on.

use crate::stats::{self, Counters};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often a line is written.
pub const PERIOD: Duration = Duration::from_millis(500);

/// The writer thread, until [`LiveStats::finish`].
pub struct LiveStats {
    stop: Sender<()>,
    thread: JoinHandle<()>,
}

/// What a line says besides the counters.
struct Source {
    counters: Arc<Counters>,
    budget: u64,
    started: Instant,
}

impl Source {
    fn line(&self) -> String {
        stats::live_line(&self.counters, self.budget, self.started.elapsed().as_millis() as u64)
    }
}

impl LiveStats {
    /// Starts writing to `path` (appended to; created if need be). `started` is when the
    /// runtime started (`t_ms` counts from it). `None` when the thread cannot be started (said
    /// on stderr).
    pub fn start(path: PathBuf, counters: Arc<Counters>, budget: u64, started: Instant) -> Option<Self> {
        let (stop, stopped) = mpsc::channel();
        let source = Source { counters, budget, started };
        let thread =
            std::thread::Builder::new().name("dlm-stats-live".into()).spawn(move || write(&path, &source, &stopped));
        match thread {
            Ok(thread) => Some(LiveStats { stop, thread }),
            Err(e) => {
                eprintln!("dlm: cannot start the thread that writes live statistics (DLM_STATS_LIVE): {e}");
                None
            }
        }
    }

    /// Writes the last line (call it once the pager has stopped) and ends the thread.
    pub fn finish(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

/// The thread: a line now and every [`PERIOD`], until a write fails or the stop comes (then a
/// last line).
fn write(path: &Path, source: &Source, stopped: &Receiver<()>) {
    let Some(mut file) = open(path) else { return };
    loop {
        if !write_line(&mut file, path, &source.line()) {
            return;
        }
        match stopped.recv_timeout(PERIOD) {
            Err(RecvTimeoutError::Timeout) => continue,
            // Shutdown (or the runtime gone).
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                write_line(&mut file, path, &source.line());
                return;
            }
        }
    }
}

fn open(path: &Path) -> Option<File> {
    match OpenOptions::new().append(true).create(true).open(path) {
        Ok(file) => Some(file),
        Err(e) => {
            warn(path, &e);
            None
        }
    }
}

/// One line in one write (with `O_APPEND`, so a reader of the last line never sees half of
/// one); false, after a warning, when it fails.
fn write_line(file: &mut File, path: &Path, line: &str) -> bool {
    match file.write_all(line.as_bytes()) {
        Ok(()) => true,
        Err(e) => {
            warn(path, &e);
            false
        }
    }
}

fn warn(path: &Path, e: &std::io::Error) {
    eprintln!("dlm: cannot write live statistics to {} ({e}); the program goes on without them", path.display());
}

#[cfg(test)]
mod tests {
    use super::*;
    use dlm_pool::proto::StatLine;

    #[test]
    fn lines_come_every_period_and_a_last_one_at_the_finish() {
        let dir = std::env::temp_dir().join(format!("dlm-live-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("stats.jsonl");
        let _ = std::fs::remove_file(&path);
        let counters = Arc::new(Counters::default());
        let live = LiveStats::start(path.clone(), counters.clone(), 1 << 20, Instant::now()).unwrap();
        std::thread::sleep(PERIOD + PERIOD / 2);
        Counters::add(&counters.bytes_fetched, 4096);
        live.finish();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<StatLine> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert!(lines.len() >= 3, "{text}");
        assert!(lines.windows(2).all(|w| w[0].t_ms <= w[1].t_ms), "{text}");
        let last = lines.last().unwrap();
        assert_eq!((last.bytes_fetched, last.local_budget_bytes), (4096, 1 << 20));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_that_cannot_be_written_ends_only_the_thread() {
        let path = PathBuf::from("/nonexistent-dir/stats.jsonl");
        let live = LiveStats::start(path, Arc::default(), 0, Instant::now()).unwrap();
        live.finish();
    }
}
