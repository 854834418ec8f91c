//! A blocking client of the WAN manager's API, for `dlm submit`, `dlm jobs`, `dlm fetch`,
//! `dlm cancel` and `dlm wan …`: one method per route.
//!
//! It is the pool's client ([`dlm_pool::client::PoolClient`]) under another name: the same
//! HTTP/1.1 over one connection per request, the same MUNGE credential over TCP (payload
//! [`MUNGE_PAYLOAD`](crate::proto::MUNGE_PAYLOAD)), the same [`ClientError`]s, which here say
//! "the WAN manager". An address without a port gets [`DEFAULT_PORT`] (7460).

use crate::proto::{DownRequest, JobId, JobStats, JobStatus, WanStatus, DEFAULT_PORT};
pub use dlm_pool::client::{Address, Auth, ClientError};
use dlm_pool::client::{PoolClient, JSON};
use serde::de::DeserializeOwned;

/// The media type of a job's bundle and of its outputs.
pub const TAR: &str = "application/x-tar";

/// What the errors call the service.
const SERVICE: &str = "WAN manager";

/// One of a job's two logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    /// Its name in the route (`/v1/jobs/{id}/stdout`).
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// A client of one WAN manager.
#[derive(Debug, Clone)]
pub struct WanClient {
    http: PoolClient,
    auth: Auth,
}

impl WanClient {
    /// A client of the WAN manager at `address`, with a MUNGE credential over TCP.
    pub fn new(address: Address) -> Self {
        WanClient { http: PoolClient::for_service(address, SERVICE), auth: Auth::Auto }
    }

    /// A client of `HOST[:PORT]` (port [`DEFAULT_PORT`] when it names none) or of a Unix
    /// socket's path.
    pub fn parse(text: &str) -> Self {
        WanClient::new(Address::parse_with_port(text, DEFAULT_PORT))
    }

    /// The same client with another `Authorization` (tests send none).
    pub fn with_auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    pub fn address(&self) -> &Address {
        &self.http.address
    }

    /// `GET /v1/clusters`: every cluster as the manager last heard of it, and the queue.
    pub fn status(&self) -> Result<WanStatus, ClientError> {
        self.json("GET", "/v1/clusters", None)
    }

    /// `POST /v1/jobs` with a bundle (`crate::bundle::pack`): the job as it was queued.
    pub fn submit(&self, bundle: &[u8]) -> Result<JobStatus, ClientError> {
        self.json("POST", "/v1/jobs", Some((bundle, TAR)))
    }

    /// `GET /v1/jobs`: the caller's jobs (root's: everyone's).
    pub fn jobs(&self) -> Result<Vec<JobStatus>, ClientError> {
        self.json("GET", "/v1/jobs", None)
    }

    /// `GET /v1/jobs/{id}`.
    pub fn job(&self, id: JobId) -> Result<JobStatus, ClientError> {
        self.json("GET", &format!("/v1/jobs/{id}"), None)
    }

    /// `GET /v1/jobs/{id}/stdout?offset=N` (or `stderr`): the log's bytes from `offset` to what
    /// is kept now, possibly none.
    pub fn log(&self, id: JobId, stream: Stream, offset: u64) -> Result<Vec<u8>, ClientError> {
        self.bytes("GET", &format!("/v1/jobs/{id}/{}?offset={offset}", stream.name()), None)
    }

    /// `GET /v1/jobs/{id}/stats`: the job's live statistics so far, oldest first (none for a
    /// program that is not a DLM program, or before its first sample).
    pub fn stats(&self, id: JobId) -> Result<JobStats, ClientError> {
        self.json("GET", &format!("/v1/jobs/{id}/stats"), None)
    }

    /// `GET /v1/jobs/{id}/outputs`: a tar archive of the job's outputs (refused, 409, while the
    /// job is not final); `crate::bundle::unpack_outputs` writes them.
    pub fn outputs(&self, id: JobId) -> Result<Vec<u8>, ClientError> {
        self.bytes("GET", &format!("/v1/jobs/{id}/outputs"), None)
    }

    /// `POST /v1/jobs/{id}/cancel`: the job as it is after.
    pub fn cancel(&self, id: JobId) -> Result<JobStatus, ClientError> {
        self.json("POST", &format!("/v1/jobs/{id}/cancel"), None)
    }

    /// `POST /v1/admin/down`: the manager stops (refused while jobs are queued or running,
    /// unless `force`, which cancels them).
    pub fn down(&self, force: bool) -> Result<(), ClientError> {
        let body = serde_json::to_vec(&DownRequest { force })
            .map_err(|source| ClientError::BadJson { service: SERVICE, source })?;
        self.bytes("POST", "/v1/admin/down", Some((&body, JSON))).map(drop)
    }

    /// A call whose success reply is a JSON body.
    fn json<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<(&[u8], &str)>,
    ) -> Result<T, ClientError> {
        let bytes = self.bytes(method, path, body)?;
        self.http.parse_json(&bytes)
    }

    /// A call whose success reply is taken as it is.
    fn bytes(&self, method: &str, path: &str, body: Option<(&[u8], &str)>) -> Result<Vec<u8>, ClientError> {
        let (bytes, content_type) = body.map_or((None, JSON), |(b, t)| (Some(b), t));
        let reply = self.http.send_typed(method, path, bytes, content_type, &self.auth)?;
        self.http.check(&reply)?;
        Ok(reply.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{JobState, Mode};
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::thread::JoinHandle;

    /// One request as the canned server received it.
    #[derive(Debug)]
    struct Request {
        head: String,
        body: Vec<u8>,
    }

    impl Request {
        fn line(&self) -> &str {
            self.head.lines().next().unwrap_or_default()
        }

        fn header(&self, name: &str) -> Option<&str> {
            self.head.lines().find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case(name).then(|| v.trim())
            })
        }
    }

    /// A server that answers each connection with the next of `replies` (status and body),
    /// then closes it; it returns what it was sent.
    fn canned(replies: Vec<(u16, Vec<u8>)>) -> (WanClient, JoinHandle<Vec<Request>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = Address::Tcp(listener.local_addr().unwrap().to_string());
        let server = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for (code, body) in replies {
                let (mut stream, _) = listener.accept().unwrap();
                let mut raw = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                        break at + 4;
                    }
                    let n = stream.read(&mut chunk).unwrap();
                    assert!(n > 0, "the client closed inside the head");
                    raw.extend_from_slice(&chunk[..n]);
                };
                let head = String::from_utf8(raw[..head_end].to_vec()).unwrap();
                let mut request = Request { head, body: Vec::new() };
                let length: usize = request.header("content-length").map_or(0, |v| v.parse().unwrap());
                while raw.len() < head_end + length {
                    let n = stream.read(&mut chunk).unwrap();
                    raw.extend_from_slice(&chunk[..n]);
                }
                request.body = raw[head_end..].to_vec();
                let reply = format!("HTTP/1.1 {code} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len());
                stream.write_all(reply.as_bytes()).and_then(|()| stream.write_all(&body)).unwrap();
                seen.push(request);
            }
            seen
        });
        (WanClient::new(address).with_auth(Auth::None), server)
    }

    fn job(id: u64, state: JobState) -> JobStatus {
        JobStatus {
            id: JobId(id),
            user: "alice".into(),
            uid: 1001,
            state,
            reason: None,
            exit_code: None,
            memory_bytes: 4 << 30,
            mode: Mode::LocalFirst,
            command: vec!["sim".into()],
            outputs: vec![],
            placement: None,
            queue_position: Some(1),
            submitted: 1000,
            started: None,
            ended: None,
            stdout_bytes: 0,
            stderr_bytes: 0,
        }
    }

    fn json<T: serde::Serialize>(value: &T) -> Vec<u8> {
        serde_json::to_vec(value).unwrap()
    }

    #[test]
    fn addresses_default_to_the_wan_port() {
        assert_eq!(WanClient::parse("wan1").address(), &Address::Tcp("wan1:7460".into()));
        assert_eq!(WanClient::parse("wan1:9000").address(), &Address::Tcp("wan1:9000".into()));
    }

    #[test]
    fn each_method_calls_its_route() {
        let status = WanStatus { clusters: vec![], queue: vec![JobId(3)], since: 5 };
        let (client, server) = canned(vec![
            (200, json(&status)),
            (201, json(&job(3, JobState::Queued))),
            (200, json(&vec![job(3, JobState::Running)])),
            (200, json(&job(3, JobState::Running))),
            (200, b"hello \x00\xff".to_vec()),
            (200, Vec::new()),
            (200, b"TAR".to_vec()),
            (200, json(&job(3, JobState::Cancelled))),
            (204, Vec::new()),
        ]);
        assert_eq!(client.status().unwrap(), status);
        assert_eq!(client.submit(b"bundle bytes").unwrap().state, JobState::Queued);
        assert_eq!(client.jobs().unwrap().len(), 1);
        assert_eq!(client.job(JobId(3)).unwrap().state, JobState::Running);
        assert_eq!(client.log(JobId(3), Stream::Stdout, 0).unwrap(), b"hello \x00\xff");
        assert!(client.log(JobId(3), Stream::Stderr, 17).unwrap().is_empty());
        assert_eq!(client.outputs(JobId(3)).unwrap(), b"TAR");
        assert_eq!(client.cancel(JobId(3)).unwrap().state, JobState::Cancelled);
        client.down(true).unwrap();

        let seen = server.join().unwrap();
        let lines: Vec<&str> = seen.iter().map(Request::line).collect();
        assert_eq!(
            lines,
            [
                "GET /v1/clusters HTTP/1.1",
                "POST /v1/jobs HTTP/1.1",
                "GET /v1/jobs HTTP/1.1",
                "GET /v1/jobs/3 HTTP/1.1",
                "GET /v1/jobs/3/stdout?offset=0 HTTP/1.1",
                "GET /v1/jobs/3/stderr?offset=17 HTTP/1.1",
                "GET /v1/jobs/3/outputs HTTP/1.1",
                "POST /v1/jobs/3/cancel HTTP/1.1",
                "POST /v1/admin/down HTTP/1.1",
            ]
        );
        assert_eq!(seen[1].header("content-type"), Some(TAR));
        assert_eq!(seen[1].body, b"bundle bytes");
        assert_eq!(seen[8].header("content-type"), Some(JSON));
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&seen[8].body).unwrap(),
            serde_json::json!({"force": true})
        );
        assert!(seen.iter().all(|r| r.header("authorization").is_none()));
    }

    #[test]
    fn refusals_carry_the_managers_message() {
        let message = "the job asks for 64 GiB, larger than any cluster could give: the most is 48 GiB on tsubame";
        let (client, server) = canned(vec![
            (507, json(&serde_json::json!({ "error": message }))),
            (409, json(&serde_json::json!({ "error": "job 3 is still running" }))),
            (200, b"not json".to_vec()),
        ]);
        let err = client.submit(b"x").unwrap_err();
        assert!(matches!(&err, ClientError::Refused { code: 507, message: m, .. } if m == message), "{err}");
        assert_eq!(err.to_string(), format!("the WAN manager refused (507): {message}"));
        let err = client.outputs(JobId(3)).unwrap_err();
        assert_eq!(err.to_string(), "the WAN manager refused (409): job 3 is still running");
        let err = client.jobs().unwrap_err();
        assert!(err.to_string().starts_with("the WAN manager's reply does not parse"), "{err}");
        server.join().unwrap();
    }

    #[test]
    fn an_absent_manager_is_named() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        drop(listener);
        let err = WanClient::parse(&address).with_auth(Auth::None).status().unwrap_err();
        assert!(err.to_string().starts_with(&format!("cannot reach the WAN manager at {address}: ")), "{err}");
    }
}
