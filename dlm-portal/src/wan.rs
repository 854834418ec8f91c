//! The portal's calls to the WAN manager, each for the user of one session.
//!
//! The portal calls as root (its MUNGE credential), so the WAN manager shows it every job;
//! here a job is the user's only if its owner is the session's user: any other job, like an
//! unknown id, is [`WanError::NotFound`], and the pages say the same for both. The client is
//! blocking (`dlm_wan::client`): every call runs on tokio's blocking threads.
//!
//! Also here: a form's files become the job's bundle (`dlm_wan::bundle::pack`, through a
//! private scratch directory), a job's outputs archive is read, and a job's folder (outputs,
//! stdout, stderr) is packed into one tar archive for download.

use crate::form::JobForm;
use dlm_wan::bundle::{self, is_flat_name, BundleError};
use dlm_wan::client::{ClientError, Stream, WanClient};
use dlm_wan::proto::{JobId, JobStats, JobStatus, WanStatus};
use std::io::{self, Read as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::time::SystemTime;

/// How much of each log the job page shows: its last 64 KiB.
pub const TAIL_BYTES: u64 = 64 << 10;

/// Why a call for a user failed.
#[derive(Debug, thiserror::Error)]
pub enum WanError {
    /// No such job, or not this user's: the same to the user.
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    Manager(#[from] ClientError),
}

/// The WAN manager, as the portal calls it.
#[derive(Debug, Clone)]
pub struct Wan {
    client: WanClient,
}

impl Wan {
    pub fn new(client: WanClient) -> Self {
        Wan { client }
    }

    pub fn client(&self) -> &WanClient {
        &self.client
    }

    /// `call` with the client, on a blocking thread.
    async fn call<T: Send + 'static>(
        &self,
        call: impl FnOnce(&WanClient) -> Result<T, ClientError> + Send + 'static,
    ) -> Result<T, ClientError> {
        let client = self.client.clone();
        let address = client.address().clone();
        tokio::task::spawn_blocking(move || call(&client)).await.unwrap_or_else(|e| {
            Err(ClientError::Io { service: "WAN manager", address, source: io::Error::other(e.to_string()) })
        })
    }

    /// Every cluster and the queue.
    pub async fn status(&self) -> Result<WanStatus, ClientError> {
        self.call(WanClient::status).await
    }

    /// `user`'s jobs, newest first.
    pub async fn jobs_of(&self, user: &str) -> Result<Vec<JobStatus>, ClientError> {
        let mut jobs = self.call(WanClient::jobs).await?;
        jobs.retain(|job| job.user == user);
        jobs.sort_by_key(|job| std::cmp::Reverse(job.id));
        Ok(jobs)
    }

    /// Job `id` if it is `user`'s.
    pub async fn job_of(&self, user: &str, id: JobId) -> Result<JobStatus, WanError> {
        match self.call(move |c| c.job(id)).await {
            Ok(job) if job.user == user => Ok(job),
            Ok(_) | Err(ClientError::Refused { code: 404, .. }) => Err(WanError::NotFound),
            Err(e) => Err(e.into()),
        }
    }

    /// The last [`TAIL_BYTES`] of one of `job`'s logs (already checked to be the user's).
    pub async fn tail(&self, job: &JobStatus, stream: Stream) -> Result<Vec<u8>, ClientError> {
        let kept = match stream {
            Stream::Stdout => job.stdout_bytes,
            Stream::Stderr => job.stderr_bytes,
        };
        let id = job.id;
        let mut bytes = self.call(move |c| c.log(id, stream, kept.saturating_sub(TAIL_BYTES))).await?;
        // It may have grown since the job's status was read.
        let extra = bytes.len().saturating_sub(TAIL_BYTES as usize);
        bytes.drain(..extra);
        Ok(bytes)
    }

    /// One of a job's whole logs (the job already checked to be the user's).
    pub async fn log(&self, id: JobId, stream: Stream) -> Result<Vec<u8>, ClientError> {
        self.call(move |c| c.log(id, stream, 0)).await
    }

    /// A job's paging statistics (the job already checked to be the user's); none when the
    /// WAN manager has none for it.
    pub async fn stats(&self, id: JobId) -> Result<JobStats, ClientError> {
        self.call(move |c| c.stats(id)).await
    }

    /// An ended job's outputs, by name (the job already checked to be the user's).
    pub async fn outputs(&self, id: JobId) -> Result<Vec<(String, Vec<u8>)>, ClientError> {
        let archive = self.call(move |c| c.outputs(id)).await?;
        read_outputs(&archive).map_err(|source| ClientError::Io {
            service: "WAN manager",
            address: self.client.address().clone(),
            source,
        })
    }

    pub async fn submit(&self, bundle: Vec<u8>) -> Result<JobStatus, ClientError> {
        self.call(move |c| c.submit(&bundle)).await
    }

    /// Cancels job `id` (already checked to be the user's).
    pub async fn cancel(&self, id: JobId) -> Result<JobStatus, ClientError> {
        self.call(move |c| c.cancel(id)).await
    }
}

/// The bundle of a checked form: its files are written into a private scratch directory (the
/// program with mode 0755), then packed by `dlm_wan::bundle::pack`, which checks them again.
pub fn bundle_of(form: &JobForm) -> Result<Vec<u8>, BundleError> {
    let dir = tempfile::Builder::new().prefix("dlm-portal-").tempdir().map_err(BundleError::Build)?;
    let mut paths = Vec::with_capacity(form.files.len());
    for upload in &form.files {
        let path = dir.path().join(&upload.name);
        let mode = if upload.executable { 0o755 } else { 0o644 };
        let write = || -> io::Result<()> {
            use std::io::Write as _;
            let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&path)?;
            file.write_all(&upload.data)
        };
        write().map_err(BundleError::Build)?;
        paths.push(path);
    }
    bundle::pack(&form.spec, &paths)
}

/// The files of a job's outputs archive, in its order: plain files with flat names only (the
/// WAN manager sends nothing else; anything else is left out). An empty body is no outputs.
pub fn read_outputs(archive: &[u8]) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    if archive.is_empty() {
        return Ok(files);
    }
    for entry in tar::Archive::new(archive).entries()? {
        let mut entry = entry?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if !entry.header().entry_type().is_file() || !is_flat_name(&name) {
            continue;
        }
        let mut data = Vec::new();
        entry.read_to_end(&mut data)?;
        files.push((name, data));
    }
    Ok(files)
}

/// The name of a job's log in its folder: `job-N.stdout` (as `dlm fetch` writes it), with
/// `.log` added should an output already have that name.
pub fn log_name(id: JobId, stream: Stream, outputs: &[(String, Vec<u8>)]) -> String {
    let name = format!("job-{id}.{}", stream.name());
    if outputs.iter().any(|(n, _)| *n == name) {
        format!("{name}.log")
    } else {
        name
    }
}

/// A job's folder as one tar archive: the directory `job-N/` with its outputs, stdout and
/// stderr.
pub fn folder_archive(id: JobId, outputs: &[(String, Vec<u8>)], stdout: &[u8], stderr: &[u8]) -> io::Result<Vec<u8>> {
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut builder = tar::Builder::new(Vec::new());
    let dir = format!("job-{id}");
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_size(0);
    header.set_mode(0o755);
    header.set_mtime(now);
    builder.append_data(&mut header, format!("{dir}/"), io::empty())?;
    let logs = [(log_name(id, Stream::Stdout, outputs), stdout), (log_name(id, Stream::Stderr, outputs), stderr)];
    let files = outputs.iter().map(|(n, d)| (n.clone(), d.as_slice())).chain(logs);
    for (name, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(now);
        builder.append_data(&mut header, format!("{dir}/{name}"), data)?;
    }
    builder.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::form::Upload;
    use dlm_wan::proto::{JobSpec, Mode, Program};

    fn members(archive: &[u8]) -> Vec<(String, tar::EntryType, u32, Vec<u8>)> {
        let mut out = Vec::new();
        for entry in tar::Archive::new(archive).entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let (kind, mode) = (entry.header().entry_type(), entry.header().mode().unwrap());
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            out.push((name, kind, mode, data));
        }
        out
    }

    #[test]
    fn a_form_becomes_a_bundle_the_wan_manager_reads() {
        let spec = JobSpec {
            program: Program::Executable { file: "sim".into() },
            args: vec!["-n".into()],
            memory_bytes: 1 << 30,
            mode: Mode::LocalFirst,
            user: Some("alice".into()),
            inputs: vec!["grid.dat".into()],
            outputs: vec![],
            place: None,
        };
        let form = JobForm {
            spec: spec.clone(),
            files: vec![
                Upload { name: "sim".into(), data: b"\x7fELF".to_vec(), executable: true },
                Upload { name: "grid.dat".into(), data: b"1".to_vec(), executable: false },
            ],
        };
        let bundle = bundle_of(&form).unwrap();
        assert_eq!(bundle::read_spec(&bundle).unwrap(), spec);
        let got = members(&bundle);
        assert_eq!((got[1].0.as_str(), got[1].2, got[1].3.as_slice()), ("sim", 0o755, b"\x7fELF".as_slice()));
        assert_eq!((got[2].0.as_str(), got[2].2), ("grid.dat", 0o644));
    }

    #[test]
    fn a_folder_holds_the_outputs_and_both_logs() {
        let outputs = vec![("result.dat".to_string(), b"42\n".to_vec()), ("job-3.stderr".to_string(), b"x".to_vec())];
        let archive = folder_archive(JobId(3), &outputs, b"out", b"err").unwrap();
        let got = members(&archive);
        let names: Vec<&str> = got.iter().map(|m| m.0.as_str()).collect();
        assert_eq!(
            names,
            ["job-3/", "job-3/result.dat", "job-3/job-3.stderr", "job-3/job-3.stdout", "job-3/job-3.stderr.log"]
        );
        assert_eq!(got[0].1, tar::EntryType::Directory);
        assert_eq!(got[3].3, b"out");
        assert_eq!(got[4].3, b"err");
    }

    #[test]
    fn outputs_archives_are_read_by_flat_name() {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in [("result.dat", b"1".as_slice()), ("log.txt", b"22")] {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            builder.append_data(&mut header, name, data).unwrap();
        }
        let archive = builder.into_inner().unwrap();
        assert_eq!(
            read_outputs(&archive).unwrap(),
            [("result.dat".to_string(), b"1".to_vec()), ("log.txt".to_string(), b"22".to_vec())]
        );
        assert!(read_outputs(b"").unwrap().is_empty());
        assert!(read_outputs(&[7u8; 1024]).is_err());
    }
}
