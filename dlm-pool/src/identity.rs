//! Who is calling: the caller's Unix user, established by the kernel or by MUNGE, never by
//! anything the caller writes in its request.
//!
//! - On the manager's Unix socket the kernel tells: the socket's peer credentials
//!   (`SO_PEERCRED`: uid, gid, pid of the connecting process).
//! - Over TCP the request must carry `Authorization: MUNGE <credential>`, a credential made
//!   on the caller's host by `munge -s dlm-pool` (a fresh one per request: munged refuses a
//!   replayed one). The manager decodes it with Debian's `unmunge` against its local munged,
//!   which vouches for the uid on the host that encoded it. The payload must be `dlm-pool`, so
//!   a credential made for another service (Slurm's) is not accepted here. Without a valid
//!   credential the request is refused (401).
//!
//! `unmunge` is run as a command rather than linked: building and running the rest of `dlm`
//! then needs no libmunge, only a manager that serves TCP needs the `munge` package.

use axum::extract::connect_info::Connected;
use axum::http::HeaderMap;
use axum::serve::IncomingStream;
use std::ffi::CStr;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use tokio::io::AsyncWriteExt;
use tokio::net::unix::UCred;
use tokio::net::{TcpListener, UnixListener};
use tokio::process::Command;

pub use crate::proto::{MUNGE_PAYLOAD, MUNGE_SCHEME};

/// How a connection reached the manager (axum's connect info, one per connection).
#[derive(Debug, Clone)]
pub enum Peer {
    /// The Unix socket, with the peer's credentials if the kernel gave them.
    Local(Option<UCred>),
    /// TCP, from this address.
    Tcp(SocketAddr),
}

impl Connected<IncomingStream<'_, UnixListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, UnixListener>) -> Self {
        Peer::Local(stream.io().peer_cred().ok())
    }
}

impl Connected<IncomingStream<'_, TcpListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        Peer::Tcp(*stream.remote_addr())
    }
}

/// A caller whose identity was established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    pub user: String,
    /// The caller's host: this host on the Unix socket, MUNGE's encode host over TCP.
    pub host: String,
    /// The caller's pid: known only on the Unix socket.
    pub pid: Option<u32>,
}

/// Why a caller's identity could not be established.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("the kernel gave no peer credentials for this connection")]
    NoPeerCredentials,
    #[error("a request over TCP needs `Authorization: MUNGE <credential>` (made with `munge -s {MUNGE_PAYLOAD}`)")]
    NoCredential,
    #[error("the MUNGE credential was refused: {0}")]
    Refused(String),
    #[error("the MUNGE credential's payload is not `{MUNGE_PAYLOAD}`: it was made for something else")]
    WrongPayload,
    #[error("cannot run unmunge to check the MUNGE credential (install Debian's `munge` package): {0}")]
    Unmunge(io::Error),
}

impl IdentityError {
    /// Whether the fault is the manager's (it cannot check), not the caller's.
    pub fn is_internal(&self) -> bool {
        matches!(self, IdentityError::Unmunge(_) | IdentityError::NoPeerCredentials)
    }
}

/// Establishes callers' identities.
#[derive(Debug, Clone)]
pub struct Verifier {
    /// munged's socket, if not the default one.
    pub munge_socket: Option<PathBuf>,
    /// This host's name, for callers on the Unix socket.
    pub hostname: String,
}

impl Verifier {
    pub fn new(munge_socket: Option<PathBuf>) -> Self {
        Verifier { munge_socket, hostname: hostname() }
    }

    /// The caller of a request that came through `peer` with `headers`.
    pub async fn identify(&self, peer: &Peer, headers: &HeaderMap) -> Result<Caller, IdentityError> {
        match peer {
            Peer::Local(Some(cred)) => Ok(Caller {
                uid: cred.uid(),
                gid: cred.gid(),
                user: user_name(cred.uid()),
                host: self.hostname.clone(),
                pid: cred.pid().and_then(|p| u32::try_from(p).ok()),
            }),
            Peer::Local(None) => Err(IdentityError::NoPeerCredentials),
            Peer::Tcp(_) => self.unmunge(munge_credential(headers)?).await,
        }
    }

    /// Decodes `credential` with `unmunge` and reads the uid, gid and encode host.
    async fn unmunge(&self, credential: &str) -> Result<Caller, IdentityError> {
        let mut command = Command::new("unmunge");
        command.args(["-k", "STATUS,UID,GID,ENCODE_HOST"]);
        if let Some(socket) = &self.munge_socket {
            command.arg("-S").arg(socket);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(IdentityError::Unmunge)?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(credential.as_bytes()).await.map_err(IdentityError::Unmunge)?;
        }
        let output = child.wait_with_output().await.map_err(IdentityError::Unmunge)?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            return Err(IdentityError::Refused(refusal(&stdout, &String::from_utf8_lossy(&output.stderr))));
        }
        parse_unmunge(&stdout)
    }
}

/// Why unmunge refused: a credential it could read but not accept (expired, replayed) has
/// its reason in the STATUS line; one it could not read at all, in its error message.
fn refusal(stdout: &str, stderr: &str) -> String {
    let status = stdout.lines().find_map(|l| l.strip_prefix("STATUS:")).map(str::trim);
    match status {
        Some(status) if !status.is_empty() => status.to_string(),
        _ => stderr.trim().trim_start_matches("unmunge: Error: ").to_string(),
    }
}

/// The credential of an `Authorization: MUNGE <credential>` header.
fn munge_credential(headers: &HeaderMap) -> Result<&str, IdentityError> {
    let value = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let credential = value.and_then(|v| v.strip_prefix(MUNGE_SCHEME)).map(str::trim);
    match credential {
        Some(c) if !c.is_empty() => Ok(c),
        _ => Err(IdentityError::NoCredential),
    }
}

/// Reads `unmunge`'s output: `KEY: value` lines (values `name (number)`), a blank line,
/// then the payload.
fn parse_unmunge(text: &str) -> Result<Caller, IdentityError> {
    let (metadata, payload) = text.split_once("\n\n").unwrap_or((text, ""));
    if payload != MUNGE_PAYLOAD {
        return Err(IdentityError::WrongPayload);
    }
    let field =
        |key: &str| metadata.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(':').map(str::trim)).unwrap_or("");
    let (user, uid) = name_and_number(field("UID"));
    let (_, gid) = name_and_number(field("GID"));
    let (Some(uid), Some(gid)) = (uid, gid) else {
        return Err(IdentityError::Refused(format!("unexpected unmunge output: {metadata}")));
    };
    let (host, _) = name_and_number(field("ENCODE_HOST"));
    Ok(Caller { uid, gid, user: user.to_string(), host: host.to_string(), pid: None })
}

/// `root (0)` → (`root`, 0); `127.0.0.1` → (`127.0.0.1`, none).
fn name_and_number(value: &str) -> (&str, Option<u32>) {
    match value.split_once(" (") {
        Some((name, rest)) => (name, rest.trim_end_matches(')').parse().ok()),
        None => (value, value.parse().ok()),
    }
}

/// The user name of `uid` on this host, or the number if it has none.
pub fn user_name(uid: u32) -> String {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: an all-zero `passwd` is a valid value (null pointers, zero ids) for
    // getpwuid_r to fill.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call: `entry` and `found` are locals, `buf` is a
    // live buffer of `buf.len()` bytes that the strings in `entry` point into afterwards.
    let rc = unsafe { libc::getpwuid_r(uid, &mut entry, buf.as_mut_ptr(), buf.len(), &mut found) };
    if rc != 0 || found.is_null() {
        return uid.to_string();
    }
    // SAFETY: on success `pw_name` points to a NUL-terminated string inside `buf`, which is
    // still alive.
    unsafe { CStr::from_ptr(entry.pw_name) }.to_string_lossy().into_owned()
}

/// The uid of user `name` on this host, if it has one.
pub fn uid_of(name: &str) -> Option<u32> {
    let name = std::ffi::CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: an all-zero `passwd` is a valid value for getpwnam_r to fill.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: `name` is NUL-terminated and alive; `entry`, `found` and `buf` (of `buf.len()`
    // bytes) are valid for writes during the call.
    let rc = unsafe { libc::getpwnam_r(name.as_ptr(), &mut entry, buf.as_mut_ptr(), buf.len(), &mut found) };
    (rc == 0 && !found.is_null()).then_some(entry.pw_uid)
}

/// This host's name.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".to_string();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_unmunge_output() {
        let text = "ENCODE_HOST:     node03 (10.0.0.3)\nUID:             alice (1001)\nGID:             users (100)\n\ndlm-pool";
        let caller = parse_unmunge(text).unwrap();
        assert_eq!(caller, Caller { uid: 1001, gid: 100, user: "alice".into(), host: "node03".into(), pid: None });
        let other = text.replace("dlm-pool", "slurm");
        assert!(matches!(parse_unmunge(&other), Err(IdentityError::WrongPayload)));
    }

    #[test]
    fn says_why_unmunge_refused() {
        assert_eq!(
            refusal("STATUS:          Replayed credential (17)\nUID: root (0)\n\n", ""),
            "Replayed credential (17)"
        );
        assert_eq!(
            refusal("", "unmunge: Error: Failed to base64-decode credential\n"),
            "Failed to base64-decode credential"
        );
    }

    #[test]
    fn wants_a_munge_authorization_header() {
        let mut headers = HeaderMap::new();
        assert!(matches!(munge_credential(&headers), Err(IdentityError::NoCredential)));
        headers.insert("authorization", "Bearer x".parse().unwrap());
        assert!(matches!(munge_credential(&headers), Err(IdentityError::NoCredential)));
        headers.insert("authorization", "MUNGE MUNGE:abc:".parse().unwrap());
        assert_eq!(munge_credential(&headers).unwrap(), "MUNGE:abc:");
    }

    #[test]
    fn names_users() {
        assert_eq!(user_name(0), "root");
        assert_eq!(user_name(4_000_000_000), "4000000000");
        assert!(!hostname().is_empty());
    }
}
