//! A blocking client of the manager's API, for `dlm pool …`, the tests, the resident servers
//! and the runtime, none of which need an async runtime for it. DLM-WAN's client speaks to the
//! WAN manager through it too: [`PoolClient::for_service`] names that service in the errors,
//! and [`PoolClient::send_typed`] carries a body that is not JSON (a job's tar archive).
//!
//! One request per connection (`Connection: close`), so a reply is whatever the manager sends
//! before it closes: no connection pool, no chunked bodies to follow. Over TCP each request
//! carries a fresh MUNGE credential from `munge -s dlm-pool` (munged refuses a replayed one);
//! over the Unix socket the kernel identifies the caller and no credential is sent.

use crate::proto::{
    Assignment, ClientId, DownRequest, DrainRequest, Drained, ErrorBody, JoinRequest, LeaseRequest, MovedRequest,
    RegisterRequest, Registered, Renewed, Report, ReportReply, ServerId, Status, MUNGE_PAYLOAD, MUNGE_SCHEME,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// The manager's TCP port when an address names none.
pub const DEFAULT_PORT: u16 = 7450;

/// The manager's Unix socket when none is named.
pub const DEFAULT_SOCKET: &str = "/run/dlm/pool.sock";

/// The media type of the bodies [`PoolClient::send`] carries.
pub const JSON: &str = "application/json";

/// How long the client waits for a reply before it gives up. A manager on a loaded head node
/// (eight jobs building and paging on two cores in the WAN test) has taken more than 10 s.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Where the manager listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Unix(PathBuf),
    /// `host:port`.
    Tcp(String),
}

impl Address {
    /// A path (it contains a `/`) is a Unix socket; anything else is `HOST[:PORT]`, the pool
    /// manager's [`DEFAULT_PORT`] when it names none.
    pub fn parse(text: &str) -> Address {
        Address::parse_with_port(text, DEFAULT_PORT)
    }

    /// [`Address::parse`] for a service whose port, when `text` names none, is `default_port`.
    pub fn parse_with_port(text: &str, default_port: u16) -> Address {
        if text.contains('/') {
            Address::Unix(PathBuf::from(text))
        } else if text.rsplit_once(':').is_some_and(|(_, port)| port.parse::<u16>().is_ok()) {
            Address::Tcp(text.to_string())
        } else {
            Address::Tcp(format!("{text}:{default_port}"))
        }
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Unix(path) => write!(f, "{}", path.display()),
            Address::Tcp(addr) => f.write_str(addr),
        }
    }
}

/// What a request carries to prove who sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// A fresh MUNGE credential over TCP, nothing over the Unix socket.
    Auto,
    /// No `Authorization` header.
    None,
    /// This `Authorization` header, as given (tests use it to forge one).
    Header(String),
}

/// Why a call failed. `service` is the client's [`PoolClient::service`] (`pool manager`).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the {service} at {address}: {source}")]
    Connect { service: &'static str, address: Address, source: io::Error },
    #[error("talking to the {service} at {address}: {source}")]
    Io { service: &'static str, address: Address, source: io::Error },
    #[error("the {service} at {address} did not answer within {} s (it may be overloaded or stopped); try again", TIMEOUT.as_secs())]
    NoAnswer { service: &'static str, address: Address },
    #[error("cannot run `munge` for a credential (install Debian's `munge` package and start munged): {0}")]
    MungeSpawn(io::Error),
    #[error("munge could not make a credential: {0}")]
    Munge(String),
    #[error("the {service} at {address} sent a reply that is not HTTP: {detail}")]
    NotHttp { service: &'static str, address: Address, detail: String },
    #[error("the {service} refused ({code}): {message}")]
    Refused { service: &'static str, code: u16, message: String },
    #[error("the {service}'s reply does not parse: {source}")]
    BadJson { service: &'static str, source: serde_json::Error },
}

/// A raw reply: the status code and the body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    pub body: Vec<u8>,
}

/// A client of one manager.
#[derive(Debug, Clone)]
pub struct PoolClient {
    pub address: Address,
    /// munged's socket, if not the default.
    pub munge_socket: Option<PathBuf>,
    /// What the errors call the service at `address`: `pool manager`, `WAN manager`.
    pub service: &'static str,
}

impl PoolClient {
    /// A client of the pool manager at `address`.
    pub fn new(address: Address) -> Self {
        PoolClient::for_service(address, "pool manager")
    }

    /// A client of another service that speaks the same HTTP (DLM-WAN's `WAN manager`): its
    /// errors name that service.
    pub fn for_service(address: Address, service: &'static str) -> Self {
        PoolClient { address, munge_socket: None, service }
    }

    pub fn status(&self) -> Result<Status, ClientError> {
        self.call("GET", "/v1/status", None::<&()>)
    }

    pub fn join(&self, request: &JoinRequest) -> Result<Assignment, ClientError> {
        self.call("POST", "/v1/clients", Some(request))
    }

    pub fn renew(&self, client: &ClientId, lease: &str) -> Result<Renewed, ClientError> {
        let body = LeaseRequest { lease: lease.to_string() };
        self.call("POST", &format!("/v1/clients/{client}/renew"), Some(&body))
    }

    pub fn leave(&self, client: &ClientId, lease: &str) -> Result<(), ClientError> {
        let body = LeaseRequest { lease: lease.to_string() };
        self.call_empty("POST", &format!("/v1/clients/{client}/leave"), &body)
    }

    pub fn moved(&self, client: &ClientId, lease: &str, from: ServerId) -> Result<(), ClientError> {
        let body = MovedRequest { lease: lease.to_string(), from };
        self.call_empty("POST", &format!("/v1/clients/{client}/moved"), &body)
    }

    pub fn register(&self, request: &RegisterRequest) -> Result<Registered, ClientError> {
        self.call("POST", "/v1/servers", Some(request))
    }

    pub fn report(&self, server: ServerId, report: &Report) -> Result<ReportReply, ClientError> {
        self.call("POST", &format!("/v1/servers/{server}/report"), Some(report))
    }

    pub fn drain(&self, host: &str) -> Result<Drained, ClientError> {
        self.call("POST", "/v1/admin/drain", Some(&DrainRequest { host: host.to_string() }))
    }

    pub fn down(&self, force: bool) -> Result<(), ClientError> {
        self.call_empty("POST", "/v1/admin/down", &DownRequest { force })
    }

    /// A call whose success reply is a JSON body.
    fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let bytes = body.map(|b| serde_json::to_vec(b).map_err(|e| self.bad_json(e))).transpose()?;
        let reply = self.send(method, path, bytes.as_deref(), &Auth::Auto)?;
        self.check(&reply)?;
        self.parse_json(&reply.body)
    }

    /// A call whose success reply has no body.
    fn call_empty<B: Serialize>(&self, method: &str, path: &str, body: &B) -> Result<(), ClientError> {
        let bytes = serde_json::to_vec(body).map_err(|e| self.bad_json(e))?;
        self.check(&self.send(method, path, Some(&bytes), &Auth::Auto)?)
    }

    /// Sends one request with a JSON body (if any) and reads the whole reply, whatever its status.
    pub fn send(&self, method: &str, path: &str, body: Option<&[u8]>, auth: &Auth) -> Result<Reply, ClientError> {
        self.send_typed(method, path, body, JSON, auth)
    }

    /// [`PoolClient::send`] with a body of the media type `content_type` (`application/x-tar`).
    pub fn send_typed(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        content_type: &str,
        auth: &Auth,
    ) -> Result<Reply, ClientError> {
        let authorization = match (auth, &self.address) {
            (Auth::Auto, Address::Tcp(_)) => {
                Some(format!("{MUNGE_SCHEME} {}", munge_credential(self.munge_socket.as_ref())?))
            }
            (Auth::Header(value), _) => Some(value.clone()),
            (Auth::Auto | Auth::None, _) => None,
        };
        let request = request_bytes(method, path, body, content_type, authorization.as_deref());
        let raw = self.exchange(&request)?;
        parse_reply(&raw).map_err(|detail| ClientError::NotHttp {
            service: self.service,
            address: self.address.clone(),
            detail,
        })
    }

    /// Turns an error status into [`ClientError::Refused`] with the service's message.
    pub fn check(&self, reply: &Reply) -> Result<(), ClientError> {
        if (200..300).contains(&reply.code) {
            return Ok(());
        }
        let message = serde_json::from_slice::<ErrorBody>(&reply.body)
            .map(|e| e.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(&reply.body).into_owned());
        Err(ClientError::Refused { service: self.service, code: reply.code, message })
    }

    /// A reply's JSON body as `T`.
    pub fn parse_json<T: DeserializeOwned>(&self, body: &[u8]) -> Result<T, ClientError> {
        serde_json::from_slice(body).map_err(|e| self.bad_json(e))
    }

    /// A body that does not parse (or serialise), named for this service.
    pub fn bad_json(&self, source: serde_json::Error) -> ClientError {
        ClientError::BadJson { service: self.service, source }
    }

    /// Writes `request` and reads until the manager closes the connection.
    fn exchange(&self, request: &[u8]) -> Result<Vec<u8>, ClientError> {
        let connect = |source| ClientError::Connect { service: self.service, address: self.address.clone(), source };
        let io_err = |source: io::Error| match source.kind() {
            // A read timeout is WouldBlock (EAGAIN) on Linux, TimedOut elsewhere.
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                ClientError::NoAnswer { service: self.service, address: self.address.clone() }
            }
            _ => ClientError::Io { service: self.service, address: self.address.clone(), source },
        };
        let mut raw = Vec::new();
        match &self.address {
            Address::Unix(path) => {
                let mut stream = UnixStream::connect(path).map_err(connect)?;
                stream.set_read_timeout(Some(TIMEOUT)).map_err(io_err)?;
                stream.write_all(request).and_then(|()| stream.read_to_end(&mut raw)).map_err(io_err)?;
            }
            Address::Tcp(addr) => {
                let mut stream = TcpStream::connect(addr).map_err(connect)?;
                stream.set_read_timeout(Some(TIMEOUT)).map_err(io_err)?;
                stream.write_all(request).and_then(|()| stream.read_to_end(&mut raw)).map_err(io_err)?;
            }
        }
        Ok(raw)
    }
}

fn request_bytes(
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    content_type: &str,
    authorization: Option<&str>,
) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: dlm-pool\r\nConnection: close\r\n");
    if let Some(value) = authorization {
        head.push_str(&format!("Authorization: {value}\r\n"));
    }
    let body = body.unwrap_or_default();
    if !body.is_empty() || method != "GET" {
        head.push_str(&format!("Content-Type: {content_type}\r\nContent-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Parses a whole HTTP/1.1 reply (the connection was closed after it).
fn parse_reply(raw: &[u8]) -> Result<Reply, String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(raw) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return Err(format!("the reply ended after {} bytes, inside its head", raw.len()))
        }
        Err(e) => return Err(e.to_string()),
    };
    let code = response.code.ok_or("no status code")?;
    let length = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse::<usize>().ok());
    let rest = &raw[head_len..];
    let body = match length {
        Some(n) if n > rest.len() => return Err(format!("the body ended after {} of {n} bytes", rest.len())),
        Some(n) => rest[..n].to_vec(),
        None => rest.to_vec(),
    };
    Ok(Reply { code, body })
}

/// A fresh credential from `munge -s dlm-pool`.
pub fn munge_credential(socket: Option<&PathBuf>) -> Result<String, ClientError> {
    let mut command = Command::new("munge");
    command.args(["-s", MUNGE_PAYLOAD]);
    if let Some(socket) = socket {
        command.arg("-S").arg(socket);
    }
    let output = command.output().map_err(ClientError::MungeSpawn)?;
    if !output.status.success() {
        let message = String::from_utf8_lossy(&output.stderr);
        return Err(ClientError::Munge(message.trim().trim_start_matches("munge: Error: ").to_string()));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(Address::parse("/run/dlm/pool.sock"), Address::Unix("/run/dlm/pool.sock".into()));
        assert_eq!(Address::parse("./pool.sock"), Address::Unix("./pool.sock".into()));
        assert_eq!(Address::parse("node01"), Address::Tcp("node01:7450".into()));
        assert_eq!(Address::parse("127.0.0.1:9000"), Address::Tcp("127.0.0.1:9000".into()));
        assert_eq!(Address::parse_with_port("wan1", 7460), Address::Tcp("wan1:7460".into()));
        assert_eq!(Address::parse_with_port("wan1:80", 7460), Address::Tcp("wan1:80".into()));
    }

    #[test]
    fn parses_replies() {
        let reply = parse_reply(b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!((reply.code, reply.body.as_slice()), (201, b"{}".as_slice()));
        let reply = parse_reply(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap();
        assert_eq!((reply.code, reply.body.len()), (204, 0));
        assert!(parse_reply(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n{}").unwrap_err().contains("2 of 9"));
        assert!(parse_reply(b"HTTP/1.1 200").is_err());
    }

    #[test]
    fn error_replies_carry_the_managers_message() {
        let reply = Reply { code: 507, body: br#"{"error":"the pool cannot hold 5 bytes"}"#.to_vec() };
        let pool = PoolClient::new(Address::parse("node01"));
        let err = pool.check(&reply).unwrap_err().to_string();
        assert_eq!(err, "the pool manager refused (507): the pool cannot hold 5 bytes");
        let wan = PoolClient::for_service(Address::parse_with_port("wan1", 7460), "WAN manager");
        let err = wan.check(&reply).unwrap_err().to_string();
        assert_eq!(err, "the WAN manager refused (507): the pool cannot hold 5 bytes");
        let err = wan.parse_json::<ErrorBody>(b"<html>").unwrap_err().to_string();
        assert!(err.starts_with("the WAN manager's reply does not parse: "), "{err}");
    }

    #[test]
    fn requests_have_a_length_and_the_credential() {
        let text = String::from_utf8(request_bytes("POST", "/v1/x", Some(b"{}"), JSON, Some("MUNGE c"))).unwrap();
        assert!(text.starts_with("POST /v1/x HTTP/1.1\r\n"), "{text}");
        assert!(text.contains("Authorization: MUNGE c\r\n") && text.contains("Content-Length: 2\r\n"), "{text}");
        assert!(text.contains("Content-Type: application/json\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n{}"), "{text}");
        let tar = request_bytes("POST", "/v1/jobs", Some(&[0, 1, 2]), "application/x-tar", None);
        assert!(tar.starts_with(b"POST /v1/jobs HTTP/1.1\r\n"));
        let head = String::from_utf8_lossy(&tar[..tar.len() - 3]).into_owned();
        assert!(head.contains("Content-Type: application/x-tar\r\nContent-Length: 3\r\n"), "{head}");
        assert!(!head.contains("Authorization"), "{head}");
        assert!(tar.ends_with(b"\r\n\r\n\x00\x01\x02"));
    }
}
