//! What the portal last fetched of each watched job, shared by every page polling it.
//!
//! A job's live view polls once a second, and each poll would cost the WAN manager four calls
//! (the status, the statistics, both logs), each with a MUNGE credential made here and checked
//! there. When many sessions watch one job (a class, a group), they share one fetch per
//! [`FRESH_FOR`]: the first poll after that fetches (one at a time per job, so a crowd arriving
//! together makes one fetch), the others read it. A log is fetched again only when its size in
//! the status has changed. Who may see a job is checked on every poll, against the status's
//! owner (`Wan::job_of`'s rule), and nothing but the status of another user's job is fetched.

use crate::wan::{Wan, WanError};
use dlm_wan::client::Stream;
use dlm_wan::proto::{JobId, JobState, JobStats, JobStatus};
use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// How long one fetch of a job serves its pollers: half the pages' polling period, so that
/// each poll sees data at most this old.
pub const FRESH_FOR: Duration = Duration::from_millis(500);

/// One fetch of a job: its status, the tails of its logs, its statistics.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub job: JobStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub stats: Option<JobStats>,
}

/// A job's last fetch and when it was made (none yet), behind the job's own lock: the poll
/// that holds it fetches, the others wait for that fetch.
type Slot = Arc<Mutex<Option<(Instant, Arc<Fetched>)>>>;

/// The last fetch of each watched job.
#[derive(Debug, Default)]
pub struct Watched {
    jobs: StdMutex<HashMap<JobId, Slot>>,
}

impl Watched {
    /// Job `id` as `user` may see it, fetched at most [`FRESH_FOR`] ago.
    pub async fn get(&self, wan: &Wan, user: &str, id: JobId) -> Result<Arc<Fetched>, WanError> {
        let slot = self.slot(id);
        let mut last = slot.lock().await;
        let fresh = last.as_ref().filter(|(at, _)| at.elapsed() < FRESH_FOR).map(|(_, f)| f.clone());
        let fetched = match fresh {
            Some(fetched) => fetched,
            None => {
                let fetched = Arc::new(fetch(wan, id, user, last.as_ref().map(|(_, f)| f.as_ref())).await?);
                *last = Some((Instant::now(), fetched.clone()));
                fetched
            }
        };
        drop(last);
        if fetched.job.state.is_final() {
            self.forget(id);
        }
        match fetched.job.user == user {
            true => Ok(fetched),
            false => Err(WanError::NotFound),
        }
    }

    fn slot(&self, id: JobId) -> Slot {
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        jobs.entry(id).or_default().clone()
    }

    /// An ended job's pages stop polling: its entry goes, so the map holds only watched jobs.
    fn forget(&self, id: JobId) {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
    }
}

/// Fetches job `id`: its status, then, if it is `user`'s (nothing of another's job is fetched
/// beyond its owner), what changed since `before` (the logs whose sizes moved) and its
/// statistics.
async fn fetch(wan: &Wan, id: JobId, user: &str, before: Option<&Fetched>) -> Result<Fetched, WanError> {
    let job = wan.job_of(user, id).await?;
    let stats = async {
        match job.state {
            JobState::Queued => None,
            _ => wan.stats(id).await.ok(),
        }
    };
    let (stdout, stderr, stats) =
        tokio::join!(tail(wan, &job, before, Stream::Stdout), tail(wan, &job, before, Stream::Stderr), stats);
    Ok(Fetched { job, stdout, stderr, stats })
}

/// The tail of one of `job`'s logs: the one fetched `before` while the log has not grown.
async fn tail(wan: &Wan, job: &JobStatus, before: Option<&Fetched>, stream: Stream) -> Vec<u8> {
    let size = |j: &JobStatus| match stream {
        Stream::Stdout => j.stdout_bytes,
        Stream::Stderr => j.stderr_bytes,
    };
    let kept = before.filter(|b| size(&b.job) == size(job)).map(|b| match stream {
        Stream::Stdout => b.stdout.clone(),
        Stream::Stderr => b.stderr.clone(),
    });
    match kept {
        Some(bytes) => bytes,
        None if size(job) == 0 => Vec::new(),
        None => wan.tail(job, stream).await.unwrap_or_default(),
    }
}
