//! The portal's router in-process (tower's `oneshot`, a cookie jar of our own) against a tiny
//! fake WAN manager: a std `TcpListener` that answers the WAN API's routes with canned JSON and
//! records what it was sent. Logins use a fixed password here (the trait's test double, which
//! the `dlm` binary has no way to reach): PAM itself is not exercised.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use dlm_portal::auth::{AuthError, Authenticator};
use dlm_portal::PortalConfig;
use dlm_wan::client::{Auth, WanClient};
use dlm_wan::proto::{
    ClusterStatus, JobId, JobSpec, JobState, JobStats, JobStatus, Mode, NodeStatus, Placement, Reach, ServerHeld,
    ServerSummary, StatSample, Through, WanStatus,
};
use http_body_util::BodyExt as _;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::ServiceExt as _;

const G: u64 = 1 << 30;

/// alice and bob, both with the password `secret`.
struct FixedPassword;

impl Authenticator for FixedPassword {
    fn authenticate(&self, user: &str, password: &str, _: Option<IpAddr>) -> Result<(), AuthError> {
        if ["alice", "bob"].contains(&user) && password == "secret" {
            Ok(())
        } else {
            Err(AuthError::Refused)
        }
    }
}

// --- The fake WAN manager ---

/// What the fake WAN manager was sent: each request's line and body.
#[derive(Default)]
struct Seen {
    requests: Vec<(String, Vec<u8>)>,
}

impl Seen {
    fn lines(&self) -> Vec<String> {
        self.requests.iter().map(|(line, _)| line.clone()).collect()
    }

    fn submitted(&self) -> Vec<Vec<u8>> {
        self.requests.iter().filter(|(l, _)| l == "POST /v1/jobs").map(|(_, b)| b.clone()).collect()
    }
}

fn job(id: u64, user: &str, state: JobState) -> JobStatus {
    JobStatus {
        id: JobId(id),
        user: user.into(),
        uid: if user == "alice" { 1001 } else { 1002 },
        state,
        reason: None,
        exit_code: state.is_final().then_some(0),
        memory_bytes: 6 * G,
        mode: Mode::LocalFirst,
        command: vec!["./sim".into(), "-n".into(), "64".into()],
        outputs: vec!["result.dat".into(), "never.dat".into()],
        placement: Some(Placement {
            cluster: "osaka".into(),
            node: "node01".into(),
            through: Through::Pool,
            local_bytes: 2 * G,
            pool_bytes: 4 * G,
            local_ratio: 1.0 / 3.0,
            servers: vec!["mem01".into()],
        }),
        queue_position: None,
        submitted: 1000,
        started: Some(1001),
        ended: state.is_final().then_some(1100),
        stdout_bytes: STDOUT.len() as u64,
        stderr_bytes: 0,
    }
}

const STDOUT: &[u8] = b"step 1\nstep 2\n<script>alert(1)</script>\n";

/// Jobs 1 (alice's, done), 2 (bob's, running) and 3 (alice's, running).
fn jobs() -> Vec<JobStatus> {
    vec![job(1, "alice", JobState::Done), job(2, "bob", JobState::Running), job(3, "alice", JobState::Running)]
}

fn status() -> WanStatus {
    let node = |host: &str, busy| NodeStatus {
        host: host.into(),
        cap_bytes: 16 * G,
        free_bytes: 6 * G,
        available_bytes: 12 * G,
        loadavg: Some([0.25, 0.2, 0.1]),
        cpus: 4,
        busy,
        jobs: 0,
        error: None,
    };
    WanStatus {
        clusters: vec![ClusterStatus {
            name: "osaka".into(),
            manager: "lan1:7450".into(),
            reach: Reach::Reachable,
            error: None,
            heard_ms_ago: Some(200),
            nodes: vec![node("node01", false), node("node02", true)],
            servers: vec![ServerSummary {
                host: "mem01".into(),
                state: "up".into(),
                cap_bytes: 32 * G,
                available_bytes: 24 * G,
                loadavg: None,
            }],
            pool_available_bytes: 24 * G,
            clients: 1,
            max_job_bytes: 48 * G,
        }],
        queue: vec![],
        since: 0,
    }
}

fn stats() -> JobStats {
    let sample = |t_ms, faults| StatSample {
        t_ms,
        resident_bytes: G,
        local_budget_bytes: 2 * G,
        faults,
        bytes_fetched: faults * 4096,
        bytes_written_back: faults * 2048,
        servers: vec![ServerHeld { host: "mem01".into(), bytes: 3 * G }],
    };
    JobStats { samples: vec![sample(500, 50), sample(1000, 150), sample(1500, 200)] }
}

fn outputs_tar() -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(3);
    header.set_mode(0o644);
    builder.append_data(&mut header, "result.dat", &b"42\n"[..]).unwrap();
    builder.into_inner().unwrap()
}

/// The fake's reply to one request: status and body.
fn answer(line: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let not_found = |id: &str| (404, format!("{{\"error\":\"no job {id} of yours\"}}").into_bytes());
    let (method, target) = line.split_once(' ').unwrap();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let find = |id: &str| jobs().into_iter().find(|j| j.id.0.to_string() == id);
    match (method, &segments[..]) {
        ("GET", ["v1", "clusters"]) => (200, json(&status())),
        ("GET", ["v1", "jobs"]) => (200, json(&jobs())),
        ("POST", ["v1", "jobs"]) => {
            let spec: JobSpec = match dlm_wan::bundle::read_spec(body) {
                Ok(spec) => spec,
                Err(e) => return (400, format!("{{\"error\":{:?}}}", e.to_string()).into_bytes()),
            };
            if spec.memory_bytes > 48 * G {
                let message = "the job asks for 1 TiB, larger than any cluster could give: the most is 48 GiB on osaka";
                return (507, format!("{{\"error\":\"{message}\"}}").into_bytes());
            }
            let mut queued = job(100, spec.user.as_deref().unwrap_or("root"), JobState::Queued);
            queued.placement = None;
            (201, json(&queued))
        }
        ("GET", ["v1", "jobs", id]) => find(id).map_or_else(|| not_found(id), |j| (200, json(&j))),
        ("GET", ["v1", "jobs", id, "stdout"]) => match find(id) {
            None => not_found(id),
            Some(_) => {
                let offset: usize = query.strip_prefix("offset=").and_then(|o| o.parse().ok()).unwrap_or(0);
                (200, STDOUT.get(offset..).unwrap_or_default().to_vec())
            }
        },
        ("GET", ["v1", "jobs", id, "stderr"]) => find(id).map_or_else(|| not_found(id), |_| (200, Vec::new())),
        ("GET", ["v1", "jobs", id, "stats"]) => find(id).map_or_else(|| not_found(id), |_| (200, json(&stats()))),
        ("GET", ["v1", "jobs", id, "outputs"]) => match find(id) {
            None => not_found(id),
            Some(j) if !j.state.is_final() => (409, b"{\"error\":\"job is running\"}".to_vec()),
            Some(_) => (200, outputs_tar()),
        },
        ("POST", ["v1", "jobs", id, "cancel"]) => match find(id) {
            None => not_found(id),
            Some(mut j) => {
                j.state = JobState::Cancelled;
                (200, json(&j))
            }
        },
        _ => (404, b"{\"error\":\"no such route\"}".to_vec()),
    }
}

fn json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

fn serve(mut stream: TcpStream, seen: &Mutex<Seen>) {
    let mut raw = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => raw.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case("content-length")))
        .map_or(0, |(_, v)| v.trim().parse().unwrap());
    while raw.len() < head_end + length {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => raw.extend_from_slice(&chunk[..n]),
        }
    }
    let line = head.lines().next().unwrap_or_default().trim_end_matches(" HTTP/1.1").to_string();
    let body = raw[head_end..].to_vec();
    let (code, reply) = answer(&line, &body);
    seen.lock().unwrap().requests.push((line, body));
    let head = format!("HTTP/1.1 {code} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", reply.len());
    let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(&reply));
}

/// Starts the fake WAN manager; it serves until the test process ends.
fn fake_wan() -> (WanClient, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let shared = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let seen = shared.clone();
            std::thread::spawn(move || serve(stream, &seen));
        }
    });
    (WanClient::parse(&address).with_auth(Auth::None), seen)
}

// --- A browser: the router, and a cookie jar ---

struct Browser {
    router: Router,
    cookies: HashMap<String, String>,
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn header(&self, name: header::HeaderName) -> &str {
        self.headers.get(name).map_or("", |v| v.to_str().unwrap())
    }

    /// The value of the hidden field `name` in the page (32 hex digits).
    fn hidden(&self, name: &str) -> String {
        let text = self.text();
        let marker = format!("name=\"{name}\" value=\"");
        let at = text.find(&marker).unwrap_or_else(|| panic!("no field {name} in {text}")) + marker.len();
        text[at..at + 32].to_string()
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }
}

impl Browser {
    fn new(config: PortalConfig) -> Browser {
        Browser { router: dlm_portal::router(config, Arc::new(FixedPassword)), cookies: HashMap::new() }
    }

    async fn send(&mut self, request: axum::http::request::Builder, body: Body) -> Reply {
        let cookie = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
        let request = if cookie.is_empty() { request } else { request.header(header::COOKIE, cookie) };
        let response = self.router.clone().oneshot(request.body(body).unwrap()).await.unwrap();
        let (parts, body) = response.into_parts();
        for value in parts.headers.get_all(header::SET_COOKIE) {
            let value = value.to_str().unwrap();
            let (pair, _) = value.split_once(';').unwrap();
            let (name, content) = pair.split_once('=').unwrap();
            if value.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.into(), content.into());
            }
        }
        Reply { status: parts.status, headers: parts.headers, body: body.collect().await.unwrap().to_bytes().to_vec() }
    }

    async fn get(&mut self, path: &str) -> Reply {
        self.send(Request::get(path), Body::empty()).await
    }

    async fn post_form(&mut self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let body: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect();
        let request = Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        self.send(request, Body::from(body.join("&"))).await
    }

    /// A multipart form: `(name, Some(file name), data)` for a file, `(name, None, text)`.
    async fn post_multipart(&mut self, path: &str, parts: &[(&str, Option<&str>, &[u8])], length: bool) -> Reply {
        let body = multipart(parts);
        let mut request =
            Request::post(path).header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={BOUNDARY}"));
        if length {
            request = request.header(header::CONTENT_LENGTH, body.len());
        }
        self.send(request, Body::from(body)).await
    }

    async fn login(&mut self, user: &str, password: &str) -> Reply {
        let token = self.get("/login").await.hidden("token");
        self.post_form("/login", &[("user", user), ("password", password), ("token", &token), ("next", "/jobs")]).await
    }

    /// The session's CSRF token, from a page's forms.
    async fn csrf(&mut self) -> String {
        self.get("/autorun").await.hidden("csrf")
    }
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

const BOUNDARY: &str = "----portal-test-boundary";

/// A multipart form's parts: `(name, Some(file name), data)` for a file, `(name, None, text)`.
type Fields<'a> = Vec<(&'a str, Option<&'a str>, &'a [u8])>;

fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, file, data) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match file {
            Some(file) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\nContent-Type: \
                     application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => {
                body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes())
            }
        }
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

fn config(wan: WanClient) -> PortalConfig {
    PortalConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        wan,
        session_idle: Duration::from_secs(1800),
        max_upload: 1 << 20,
        secure_cookies: false,
    }
}

/// A portal with alice logged in, and what its WAN manager is sent.
async fn alice() -> (Browser, Arc<Mutex<Seen>>) {
    let (wan, seen) = fake_wan();
    let mut browser = Browser::new(config(wan));
    let reply = browser.login("alice", "secret").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
    (browser, seen)
}

// --- The tests ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_need_a_login_and_a_login_needs_the_password() {
    let (wan, _) = fake_wan();
    let mut browser = Browser::new(config(wan));
    let reply = browser.get("/jobs/3").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.header(header::LOCATION), "/login?next=/jobs/3");
    assert_eq!(browser.get("/api/clusters").await.status, StatusCode::UNAUTHORIZED);

    let form = browser.get("/login").await;
    assert_eq!(form.status, StatusCode::OK);
    for id in ["login-form", "login-user", "login-password", "login-submit"] {
        assert!(form.text().contains(&format!("id=\"{id}\"")), "{id}");
    }
    assert!(form.header(header::SET_COOKIE).contains("HttpOnly; SameSite=Strict"));
    let token = form.hidden("token");

    // A login form that this portal did not hand to this browser is refused.
    let forged = [("user", "alice"), ("password", "secret"), ("token", "0123456789abcdef0123456789abcdef")];
    let reply = browser.post_form("/login", &forged).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.text().contains("The login form had expired"), "{}", reply.text());

    let token2 = browser.get("/login").await.hidden("token");
    assert_ne!(token, token2);
    let reply = browser.post_form("/login", &[("user", "alice"), ("password", "wrong"), ("token", &token2)]).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.text().contains("Login failed: the user name or the password is wrong."), "{}", reply.text());
    assert!(reply.text().contains("value=\"alice\""), "the name is kept");
    assert!(!browser.cookies.contains_key("dlm_portal_session"));

    let token3 = browser.get("/login").await.hidden("token");
    let reply = browser.post_form("/login", &[("user", "alice"), ("token", &token3)]).await;
    assert!(reply.text().contains("Give your user name and your password."), "{}", reply.text());

    let reply = browser.login("alice", "secret").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.header(header::LOCATION), "/jobs");
    let mut cookies = reply.headers.get_all(header::SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_string());
    let session = cookies.find(|c| c.starts_with("dlm_portal_session=")).unwrap();
    assert!(session.ends_with("; HttpOnly; SameSite=Strict; Path=/"), "{session}");
    assert_eq!(session.split(';').next().unwrap().len(), "dlm_portal_session=".len() + 32);
    assert!(!browser.cookies.contains_key("dlm_portal_login"), "the login cookie is dropped");

    let page = browser.get("/jobs").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("<span id=\"user-name\">alice</span>"));
    assert!(page.header(header::CONTENT_SECURITY_POLICY).contains("script-src 'self'"));
    assert_eq!(page.header(header::X_FRAME_OPTIONS), "DENY");
    assert_eq!(page.header(header::CACHE_CONTROL), "no-store");
    // Logged in, the login page sends the browser on.
    assert_eq!(browser.get("/login?next=/downloads").await.header(header::LOCATION), "/downloads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_sees_only_their_own_jobs() {
    let (mut browser, seen) = alice().await;
    let page = browser.get("/jobs").await.text();
    let (three, one) = (page.find("id=\"job-row-3\"").unwrap(), page.find("id=\"job-row-1\"").unwrap());
    assert!(three < one, "newest first");
    assert!(!page.contains("job-row-2"), "bob's job is not listed");
    assert!(page.contains("<td>osaka/node01</td><td>mem01</td><td class=\"num\">33%</td>"), "{page}");

    // Bob's job and a job that does not exist read the same, on every route.
    let theirs = browser.get("/jobs/2").await;
    let unknown = browser.get("/jobs/999").await;
    assert_eq!((theirs.status, unknown.status), (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND));
    assert!(theirs.text().contains("id=\"not-found\""));
    assert_eq!(theirs.text().replace("job 2", "job N"), unknown.text().replace("job 999", "job N"));
    assert_eq!(browser.get("/jobs/abc").await.status, StatusCode::NOT_FOUND);
    for path in
        ["/api/jobs/2", "/downloads/2", "/downloads/2/archive", "/downloads/2/stdout", "/downloads/2/files/result.dat"]
    {
        assert_eq!(browser.get(path).await.status, StatusCode::NOT_FOUND, "{path}");
    }
    let csrf = browser.csrf().await;
    assert_eq!(browser.post_form("/jobs/2/cancel", &[("csrf", &csrf)]).await.status, StatusCode::NOT_FOUND);
    let lines = seen.lock().unwrap().lines();
    assert!(!lines.iter().any(|l| l.starts_with("GET /v1/jobs/2/") || l.starts_with("POST /v1/jobs/2/")), "{lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_page_and_its_live_view() {
    let (mut browser, _) = alice().await;
    let page = browser.get("/jobs/3").await;
    assert_eq!(page.status, StatusCode::OK);
    let text = page.text();
    for id in [
        "job-state",
        "job-elapsed",
        "stdout-tail",
        "stderr-tail",
        "memory-bar",
        "faults-plot",
        "traffic-plot",
        "servers-bars",
        "cancel-form",
    ] {
        assert!(text.contains(&format!("id=\"{id}\"")), "{id} in {text}");
    }
    assert!(text.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "the log is escaped");
    assert!(!text.contains("<script>alert"));
    assert!(text.contains("1 GiB of 2 GiB local"));

    let live = browser.get("/api/jobs/3").await.json();
    assert_eq!(live["state"], "running");
    assert_eq!(live["final"], false);
    assert_eq!(live["stdout"], String::from_utf8_lossy(STDOUT).as_ref());
    assert_eq!(live["stats"]["t"], serde_json::json!([0.5, 1.0, 1.5]));
    assert_eq!(live["stats"]["faults_per_s"], serde_json::json!([100.0, 200.0, 100.0]));
    assert_eq!(live["stats"]["servers"][0]["text"], "3 GiB");
    let newer = browser.get("/api/jobs/3?after=1000").await.json();
    assert_eq!(newer["stats"]["t"], serde_json::json!([1.5]));
    assert_eq!(browser.get("/api/jobs/2").await.json(), serde_json::json!({ "error": "not found" }));

    // An ended job's page has no Cancel button.
    assert!(!browser.get("/jobs/1").await.text().contains("id=\"cancel-form\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polls_of_one_job_share_one_fetch() {
    let (mut browser, seen) = alice().await;
    for _ in 0..10 {
        assert_eq!(browser.get("/api/jobs/3").await.json()["state"], "running");
    }
    let lines = seen.lock().unwrap().lines();
    let count = |line: &str| lines.iter().filter(|l| l.as_str() == line).count();
    // One fetch (or two, should this machine stall past the half second between two polls).
    assert!((1..=2).contains(&count("GET /v1/jobs/3")), "{lines:?}");
    assert!((1..=2).contains(&count("GET /v1/jobs/3/stats")), "{lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_needs_the_sessions_token() {
    let (mut browser, seen) = alice().await;
    let reply = browser.post_form("/jobs/3/cancel", &[("csrf", "0123456789abcdef0123456789abcdef")]).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(reply.text().contains("nothing was done"));
    assert_eq!(browser.post_form("/jobs/3/cancel", &[]).await.status, StatusCode::FORBIDDEN);
    assert!(!seen.lock().unwrap().lines().contains(&"POST /v1/jobs/3/cancel".to_string()));
    let csrf = browser.csrf().await;
    let reply = browser.post_form("/jobs/3/cancel", &[("csrf", &csrf)]).await;
    assert_eq!((reply.status, reply.header(header::LOCATION)), (StatusCode::SEE_OTHER, "/jobs/3"));
    assert!(seen.lock().unwrap().lines().contains(&"POST /v1/jobs/3/cancel".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autorun_submits_a_bundle_as_the_user() {
    let (mut browser, seen) = alice().await;
    let csrf = browser.csrf().await;
    let parts: [(&str, Option<&str>, &[u8]); 8] = [
        ("csrf", None, csrf.as_bytes()),
        ("program", Some("sim"), b"\x7fELF binary"),
        ("inputs", Some("grid.dat"), b"1 2 3\n"),
        ("memory", None, b"4G"),
        ("args", None, b"-n\n64\nhello world"),
        ("outputs", None, b"result.dat"),
        ("mode", None, b"equalize"),
        ("inputs", Some(""), b""),
    ];
    let reply = browser.post_multipart("/autorun", &parts, true).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
    assert_eq!(reply.header(header::LOCATION), "/jobs/100");
    let bundles = seen.lock().unwrap().submitted();
    assert_eq!(bundles.len(), 1);
    let spec = dlm_wan::bundle::read_spec(&bundles[0]).unwrap();
    assert_eq!(spec.user.as_deref(), Some("alice"));
    assert_eq!(spec.args, ["-n", "64", "hello world"]);
    assert_eq!((spec.memory_bytes, spec.mode, spec.place), (4 * G, Mode::Equalize, None));
    assert_eq!((spec.inputs, spec.outputs), (vec!["grid.dat".to_string()], vec!["result.dat".to_string()]));
    let mut archive = tar::Archive::new(bundles[0].as_slice());
    let modes: Vec<(String, u32)> = archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (String::from_utf8_lossy(&e.path_bytes()).into_owned(), e.header().mode().unwrap())
        })
        .collect();
    assert_eq!(modes, [("job.json".into(), 0o644), ("sim".into(), 0o755), ("grid.dat".into(), 0o644)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_forms_say_why_and_submit_nothing() {
    let (mut browser, seen) = alice().await;
    let csrf = browser.csrf().await;
    let good: Fields = vec![
        ("csrf", None, csrf.as_bytes()),
        ("program", Some("sim"), b"x"),
        ("memory", None, b"4G"),
        ("outputs", None, b"result.dat"),
    ];
    let with = |name: &'static str, file: Option<&'static str>, data: &'static [u8]| {
        let mut parts: Fields = good.iter().filter(|p| p.0 != name).cloned().collect();
        parts.push((name, file, data));
        parts
    };
    let cases: Vec<(Fields, StatusCode, &str)> = vec![
        (with("csrf", None, b"0123456789abcdef0123456789abcdef"), StatusCode::FORBIDDEN, "This form is out of date"),
        (
            with("inputs", Some("../etc/passwd"), b""),
            StatusCode::BAD_REQUEST,
            "input file `../etc/passwd`: a name may not hold",
        ),
        (
            with("inputs", Some("/etc/passwd"), b""),
            StatusCode::BAD_REQUEST,
            "input file `/etc/passwd`: a name may not hold",
        ),
        (with("outputs", None, b"../../x"), StatusCode::BAD_REQUEST, "output `../../x`: a name may not hold"),
        (with("memory", None, b""), StatusCode::BAD_REQUEST, "memory needed is missing; fill it in"),
        (with("program", Some(""), b""), StatusCode::BAD_REQUEST, "the program file is missing"),
        (
            with("memory", None, b"1T"),
            StatusCode::INSUFFICIENT_STORAGE,
            "The WAN manager refused the job: the job asks for 1 TiB, larger than any cluster could give: the most is \
             48 GiB on osaka",
        ),
    ];
    for (parts, status, message) in cases {
        let reply = browser.post_multipart("/autorun", &parts, true).await;
        let text = reply.text();
        assert_eq!(reply.status, status, "{message}: {text}");
        assert!(text.contains("id=\"form-error\""), "{text}");
        assert!(text.contains(message), "{message} not in {text}");
        assert!(text.contains("id=\"autorun-form\""), "the form is shown again");
    }
    // What was typed is kept.
    let reply = browser.post_multipart("/autorun", &with("memory", None, b"1T"), true).await;
    assert!(reply.text().contains("name=\"memory\" value=\"1T\""), "{}", reply.text());
    // Only the 1T requests reached the WAN manager (which refused them).
    let submitted = seen.lock().unwrap().submitted();
    assert_eq!(submitted.len(), 2);
    assert!(submitted.iter().all(|b| dlm_wan::bundle::read_spec(b).unwrap().memory_bytes == 1 << 40));
    // Not a multipart form at all.
    let reply = browser.post_form("/autorun", &[("csrf", &csrf)]).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.text().contains("did not come as an upload"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_over_the_limit_is_refused_whole() {
    let (wan, seen) = fake_wan();
    let mut browser = Browser::new(PortalConfig { max_upload: 64 << 10, ..config(wan) });
    browser.login("alice", "secret").await;
    let csrf = browser.csrf().await;
    let big = vec![b'x'; 100 << 10];
    let parts: [(&str, Option<&str>, &[u8]); 3] =
        [("csrf", None, csrf.as_bytes()), ("program", Some("sim"), &big), ("memory", None, b"4G")];
    // With its length announced (as browsers send forms), and without (read up to the limit).
    for announced in [true, false] {
        let reply = browser.post_multipart("/autorun", &parts, announced).await;
        let text = reply.text();
        assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE, "{text}");
        assert!(text.contains("The upload is too large: this portal takes at most 64 KiB in one form"), "{text}");
        assert!(text.contains("Nothing was submitted"));
    }
    assert!(seen.lock().unwrap().submitted().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_lists_the_nodes_and_submits_with_the_chosen_place() {
    let (mut browser, seen) = alice().await;
    let page = browser.get("/interactive").await.text();
    assert!(page.contains("value=\"osaka/node01\""), "{page}");
    assert!(page.contains("<tr class=\"node busy\" data-place=\"osaka/node02\">"), "{page}");
    assert!(page.contains("8 GiB of 32 GiB"), "the memory server's use");
    assert!(page.contains("id=\"interactive-form\""));
    let live = browser.get("/api/clusters").await.json();
    assert_eq!(live["clusters"][0]["nodes"][0]["available"], "12 GiB");
    assert_eq!(live["clusters"][0]["nodes"][1]["busy"], true);

    let csrf = browser.csrf().await;
    let mut parts: Fields = vec![
        ("csrf", None, csrf.as_bytes()),
        ("program", Some("stencil.c"), b"int main(void){return 0;}"),
        ("dlmcc", None, b"on"),
        ("cflags", None, b"-O3 -DN=64"),
        ("memory", None, b"2G"),
    ];
    let reply = browser.post_multipart("/interactive", &parts, true).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.text().contains("choose a node in the table above"));
    parts.push(("place", None, b"osaka/node02"));
    let reply = browser.post_multipart("/interactive", &parts, true).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
    let spec = dlm_wan::bundle::read_spec(&seen.lock().unwrap().submitted()[0]).unwrap();
    let place = spec.place.unwrap();
    assert_eq!((place.cluster.as_str(), place.node.as_str()), ("osaka", "node02"));
    assert!(matches!(spec.program, dlm_wan::proto::Program::Dlmcc { ref cflags, .. } if cflags == &["-O3", "-DN=64"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_give_a_jobs_files_and_its_folder() {
    let (mut browser, _) = alice().await;
    let page = browser.get("/downloads").await.text();
    assert!(page.contains("id=\"folder-row-1\"") && page.contains("id=\"folder-row-3\""));
    assert!(!page.contains("folder-row-2"));

    let folder = browser.get("/downloads/1").await.text();
    assert!(folder.contains("href=\"/downloads/1/files/result.dat\""), "{folder}");
    assert!(folder.contains("href=\"/downloads/1/stdout\""));
    assert!(folder.contains("It did not write never.dat."), "{folder}");
    let running = browser.get("/downloads/3").await.text();
    assert!(running.contains("its outputs come when it has ended"), "{running}");

    let file = browser.get("/downloads/1/files/result.dat").await;
    assert_eq!(file.body, b"42\n");
    assert_eq!(file.header(header::CONTENT_DISPOSITION), "attachment; filename=\"result.dat\"");
    let missing = browser.get("/downloads/1/files/never.dat").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let log = browser.get("/downloads/1/stdout").await;
    assert_eq!(
        (log.body.as_slice(), log.header(header::CONTENT_DISPOSITION)),
        (STDOUT, "attachment; filename=\"job-1.stdout\"")
    );

    let archive = browser.get("/downloads/1/archive").await;
    assert_eq!(archive.header(header::CONTENT_TYPE), "application/x-tar");
    let mut names = Vec::new();
    for entry in tar::Archive::new(archive.body.as_slice()).entries().unwrap() {
        let mut entry = entry.unwrap();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        names.push((String::from_utf8_lossy(&entry.path_bytes()).into_owned(), data.len()));
    }
    assert_eq!(
        names,
        [
            ("job-1/".into(), 0),
            ("job-1/result.dat".into(), 3),
            ("job-1/job-1.stdout".into(), STDOUT.len()),
            ("job-1/job-1.stderr".into(), 0)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_end_at_logout_and_when_idle() {
    let (mut browser, _) = alice().await;
    let csrf = browser.csrf().await;
    assert_eq!(browser.post_form("/logout", &[("csrf", "nope")]).await.status, StatusCode::FORBIDDEN);
    let reply = browser.post_form("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(reply.header(header::LOCATION), "/login");
    assert!(!browser.cookies.contains_key("dlm_portal_session"));
    let saved = csrf;
    assert_eq!(browser.get("/jobs").await.status, StatusCode::SEE_OTHER);
    assert!(!saved.is_empty());

    let (wan, _) = fake_wan();
    let mut browser = Browser::new(PortalConfig { session_idle: Duration::from_millis(400), ..config(wan) });
    browser.login("alice", "secret").await;
    assert_eq!(browser.get("/jobs").await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(250)).await;
    // Polling does not keep the session alive; a page does.
    assert_eq!(browser.get("/api/clusters").await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(browser.get("/api/clusters").await.status, StatusCode::UNAUTHORIZED);
    let reply = browser.get("/jobs").await;
    assert_eq!((reply.status, reply.header(header::LOCATION)), (StatusCode::SEE_OTHER, "/login?next=/jobs"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_assets_and_unknown_pages() {
    let (mut browser, _) = alice().await;
    let css = browser.get("/static/portal.css").await;
    assert_eq!(css.header(header::CONTENT_TYPE), "text/css; charset=utf-8");
    assert!(css.text().contains("#top"));
    let js = browser.get("/static/portal.js").await;
    assert!(js.text().contains("data-points") || js.text().contains("dataset.points"));
    let missing = browser.get("/nowhere").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.text().contains("There is no such page."));
    assert_eq!(browser.get("/").await.header(header::LOCATION), "/interactive");
}
