//! The portal's router: every route's handler, the session extractor ([`User`]), the upload
//! limit and the headers every reply carries.
//!
//! | method and path                    | what                                                   |
//! |------------------------------------|--------------------------------------------------------|
//! | `GET /`                            | → `/interactive`                                       |
//! | `GET /login`, `POST /login`        | the login form; a login (PAM) starts a session          |
//! | `POST /logout`                     | ends the session (CSRF)                                |
//! | `GET /autorun`, `POST /autorun`    | the Autorun form; a job (multipart, CSRF) → its page   |
//! | `GET /interactive`, `POST /interactive` | the clusters and the form; a job on the chosen node |
//! | `GET /jobs`                        | the user's jobs, newest first                          |
//! | `GET /jobs/{id}`                   | a job's live view                                      |
//! | `POST /jobs/{id}/cancel`           | cancels it (CSRF) → its page                           |
//! | `GET /downloads`                   | the user's job folders                                 |
//! | `GET /downloads/{id}`              | a job's folder: each file                              |
//! | `GET /downloads/{id}/archive`      | the whole folder as `job-N.tar`                         |
//! | `GET /downloads/{id}/stdout`, `/stderr` | a whole log                                       |
//! | `GET /downloads/{id}/files/{name}` | one output                                             |
//! | `GET /api/clusters`                | JSON: the clusters, for the Interactive page's script  |
//! | `GET /api/jobs/{id}?after=T_MS`    | JSON: a job's live view, for its page's script         |
//! | `GET /static/portal.css`, `.js`    | the stylesheet and the script                          |
//! | `GET /favicon.ico`                 | 204: no icon                                           |
//!
//! Without a session, a page redirects to `/login?next=PATH` and a JSON route answers 401.
//! A job that is not the user's, or an unknown or malformed id, is the same 404 page.

use crate::auth::{AuthError, Authenticator};
use crate::form::{self, Page, Part, Typed};
use crate::live;
use crate::session::{self, SessionView, Sessions, Token, LOGIN_COOKIE, LOGIN_FORM_LIFETIME, SESSION_COOKIE};
use crate::view::{self, FolderFile, Who};
use crate::wan::{self, Wan, WanError};
use crate::watched::{Fetched, Watched};
use crate::{assets, PortalConfig};
use axum::body::Body;
use axum::extract::{
    ConnectInfo, DefaultBodyLimit, FromRequest, FromRequestParts, Multipart, Path, Query, Request, State,
};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{AppendHeaders, Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{middleware, Form, Json, Router};
use dlm_units::Bytes;
use dlm_wan::client::{ClientError, Stream};
use dlm_wan::proto::{JobId, JobStatus};
use maud::Markup;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use tokio::sync::Semaphore;

/// How many password checks run at once (each holds a blocking thread, a failed one for the
/// seconds of PAM's fail delay).
const CONCURRENT_LOGINS: usize = 4;

/// The most of an over-limit upload that is read (and thrown away) so that the browser gets
/// the page that says so; beyond it the connection is closed.
const DRAIN_AT_MOST: u64 = 4 << 30;

/// What every handler shares.
pub struct Portal {
    config: PortalConfig,
    sessions: Sessions,
    auth: Arc<dyn Authenticator>,
    wan: Wan,
    /// The last fetch of each job that pages are watching.
    watched: Watched,
    logins: Semaphore,
}

type AppState = Arc<Portal>;

/// The portal's routes (see the module's documentation), for `config`'s WAN manager, with
/// logins checked by `auth`.
pub fn router(config: PortalConfig, auth: Arc<dyn Authenticator>) -> Router {
    let upload_limit = DefaultBodyLimit::max(usize::try_from(config.max_upload).unwrap_or(usize::MAX));
    let portal = Arc::new(Portal {
        sessions: Sessions::new(config.session_idle),
        wan: Wan::new(config.wan.clone()),
        watched: Watched::default(),
        config,
        auth,
        logins: Semaphore::new(CONCURRENT_LOGINS),
    });
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/autorun", get(autorun_page).post(autorun_submit).layer(upload_limit))
        .route("/interactive", get(interactive_page).post(interactive_submit).layer(upload_limit))
        .route("/jobs", get(jobs_page))
        .route("/jobs/{id}", get(job_page))
        .route("/jobs/{id}/cancel", post(cancel))
        .route("/downloads", get(downloads_page))
        .route("/downloads/{id}", get(folder_page))
        .route("/downloads/{id}/archive", get(download_archive))
        .route("/downloads/{id}/stdout", get(download_stdout))
        .route("/downloads/{id}/stderr", get(download_stderr))
        .route("/downloads/{id}/files/{name}", get(download_file))
        .route("/api/clusters", get(api_clusters))
        .route("/api/jobs/{id}", get(api_job))
        .route(assets::CSS_PATH, get(|| async { asset("text/css; charset=utf-8", assets::CSS) }))
        .route(assets::JS_PATH, get(|| async { asset("text/javascript; charset=utf-8", assets::JS) }))
        // No icon: an empty answer, rather than a 404 page on every first visit.
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .fallback(fallback)
        .layer(middleware::map_response(security_headers))
        .with_state(portal)
}

/// The headers of every reply: no framing, no sniffing, nothing but this portal's own script
/// and style, no caching of pages (they show a user's jobs).
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let fixed = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
        ),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    response
}

fn asset(content_type: &'static str, text: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], text).into_response()
}

fn html(status: StatusCode, markup: Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The user of the request's session. Without one, a page redirects to the login form (and
/// back here after it); a JSON route answers 401. A JSON route (the pages' polling) does not
/// count as the user's activity.
pub struct User {
    session: SessionView,
    csrf: String,
}

impl User {
    fn who(&self) -> Who<'_> {
        Who { user: &self.session.user, csrf: &self.csrf }
    }

    fn name(&self) -> &str {
        &self.session.user
    }

    /// Whether a form's `csrf` field is this session's token.
    fn csrf_ok(&self, given: Option<&str>) -> bool {
        given.is_some_and(|given| session::tokens_match(&self.session.csrf, given))
    }
}

impl FromRequestParts<AppState> for User {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let api = parts.uri.path().starts_with("/api/");
        let session = session::cookie(&parts.headers, SESSION_COOKIE)
            .and_then(Token::parse)
            .and_then(|id| state.sessions.get(&id, Instant::now(), !api));
        match session {
            Some(session) => Ok(User { csrf: session.csrf.to_string(), session }),
            None if api => Err((StatusCode::UNAUTHORIZED, Json(error_json("log in again"))).into_response()),
            None => {
                let next = match parts.method {
                    Method::GET => parts.uri.path_and_query().map_or("/", |p| p.as_str()),
                    _ => "/",
                };
                Err(Redirect::to(&format!("/login?next={}", percent_encode(next))).into_response())
            }
        }
    }
}

fn error_json(message: &str) -> serde_json::Value {
    serde_json::json!({ "error": message })
}

/// `text` for a URL's query: everything but unreserved characters and `/` as `%XX`.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Where a login may send the browser: a path of this portal only (not `//host`, not a URL).
pub fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(next)
            if next.starts_with('/')
                && !next.starts_with("//")
                && !next.starts_with("/\\")
                && !next.starts_with("/login")
                && next.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            next
        }
        _ => "/",
    }
}

async fn home(_user: User) -> Redirect {
    Redirect::to("/interactive")
}

async fn fallback(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let session = session::cookie(&headers, SESSION_COOKIE)
        .and_then(Token::parse)
        .and_then(|id| state.sessions.get(&id, Instant::now(), false));
    let csrf = session.as_ref().map(|s| s.csrf.to_string()).unwrap_or_default();
    let who = session.as_ref().map(|s| Who { user: &s.user, csrf: &csrf });
    html(StatusCode::NOT_FOUND, view::not_found(who, "There is no such page."))
}

// --- Login and logout ---

/// The login form, with a new token for it (also set as the login cookie).
fn login_form(state: &Portal, status: StatusCode, error: Option<&str>, user: &str, next: &str) -> Response {
    let Ok(token) = Token::random() else {
        return html(StatusCode::INTERNAL_SERVER_ERROR, view::failure(None, "Log in", "no random numbers: try again"));
    };
    let cookie =
        session::set_cookie(LOGIN_COOKIE, &token.to_string(), state.config.secure_cookies, Some(LOGIN_FORM_LIFETIME));
    let page = view::login(error, &token.to_string(), user, safe_next(Some(next)));
    (status, [(header::SET_COOKIE, cookie)], Html(page.into_string())).into_response()
}

async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let next = safe_next(query.get("next").map(String::as_str));
    let logged_in = session::cookie(&headers, SESSION_COOKIE)
        .and_then(Token::parse)
        .and_then(|id| state.sessions.get(&id, Instant::now(), true));
    if logged_in.is_some() {
        return Redirect::to(next).into_response();
    }
    login_form(&state, StatusCode::OK, None, "", next)
}

/// The browser's address, when the portal serves real connections.
struct Remote(Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Remote {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Remote(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0)))
    }
}

async fn login(
    State(state): State<AppState>,
    Remote(remote): Remote,
    headers: HeaderMap,
    Form(fields): Form<HashMap<String, String>>,
) -> Response {
    let field = |name: &str| fields.get(name).map(String::as_str).unwrap_or_default();
    let (user, password, next) = (field("user").trim(), field("password"), field("next"));
    let token_ok = session::cookie(&headers, LOGIN_COOKIE)
        .and_then(Token::parse)
        .is_some_and(|expected| session::tokens_match(&expected, field("token")));
    if !token_ok {
        let message = "The login form had expired (or did not come from this portal); log in again.";
        return login_form(&state, StatusCode::BAD_REQUEST, Some(message), user, next);
    }
    if user.is_empty() || password.is_empty() {
        let message = "Give your user name and your password.";
        return login_form(&state, StatusCode::BAD_REQUEST, Some(message), user, next);
    }
    let checked = {
        let Ok(_permit) = state.logins.acquire().await else {
            return login_form(&state, StatusCode::SERVICE_UNAVAILABLE, Some("The portal is stopping."), user, next);
        };
        let (auth, name, password) = (state.auth.clone(), user.to_string(), password.to_string());
        tokio::task::spawn_blocking(move || auth.authenticate(&name, &password, remote.map(|r| r.ip())))
            .await
            .unwrap_or_else(|e| Err(AuthError::Unavailable(e.to_string())))
    };
    match checked {
        Ok(()) => {}
        Err(AuthError::Unavailable(why)) => {
            eprintln!("dlm portal: the login of {user:?} could not be checked: {why}");
            let message = "Your password could not be checked just now (the portal's log says why); try again later.";
            return login_form(&state, StatusCode::SERVICE_UNAVAILABLE, Some(message), user, next);
        }
        Err(refused) => {
            let message = format!("Login failed: {refused}.");
            return login_form(&state, StatusCode::UNAUTHORIZED, Some(&message), user, next);
        }
    }
    let Ok(session) = state.sessions.create(user, Instant::now()) else {
        return login_form(
            &state,
            StatusCode::INTERNAL_SERVER_ERROR,
            Some("No random numbers: try again."),
            user,
            next,
        );
    };
    let secure = state.config.secure_cookies;
    // Two cookies: appended (an array of headers would keep only the last).
    let cookies = AppendHeaders([
        (header::SET_COOKIE, session::set_cookie(SESSION_COOKIE, &session.id.to_string(), secure, None)),
        (header::SET_COOKIE, session::set_cookie(LOGIN_COOKIE, "", secure, Some(std::time::Duration::ZERO))),
    ]);
    (cookies, Redirect::to(safe_next(Some(next)))).into_response()
}

async fn logout(State(state): State<AppState>, user: User, Form(fields): Form<HashMap<String, String>>) -> Response {
    if !user.csrf_ok(fields.get("csrf").map(String::as_str)) {
        return stale_form(&user);
    }
    state.sessions.remove(&user.session.id);
    let cookie = session::set_cookie(SESSION_COOKIE, "", state.config.secure_cookies, Some(std::time::Duration::ZERO));
    ([(header::SET_COOKIE, cookie)], Redirect::to("/login")).into_response()
}

/// A form whose CSRF token is not the session's: nothing was done.
fn stale_form(user: &User) -> Response {
    let message = "This form is out of date (or did not come from this portal's page): nothing was done. \
                   Go back, reload the page and try again.";
    html(StatusCode::FORBIDDEN, view::failure(Some(user.who()), "Nothing done", message))
}

// --- Autorun and Interactive ---

async fn autorun_page(State(state): State<AppState>, user: User) -> Response {
    form_page(&state, &user, Page::Autorun, &Typed::default(), None, StatusCode::OK).await
}

async fn interactive_page(State(state): State<AppState>, user: User) -> Response {
    form_page(&state, &user, Page::Interactive, &Typed::default(), None, StatusCode::OK).await
}

async fn autorun_submit(State(state): State<AppState>, user: User, request: Request) -> Response {
    submit(&state, &user, Page::Autorun, request).await
}

async fn interactive_submit(State(state): State<AppState>, user: User, request: Request) -> Response {
    submit(&state, &user, Page::Interactive, request).await
}

/// A job form's page, filled in with `typed`, with the message `error`.
async fn form_page(
    state: &Portal,
    user: &User,
    page: Page,
    typed: &Typed,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let limit = state.config.max_upload;
    let markup = match page {
        Page::Autorun => view::autorun(user.who(), typed, error, limit),
        Page::Interactive => {
            let clusters = state.wan.status().await.map(|s| live::clusters(&s)).map_err(|e| e.to_string());
            view::interactive(user.who(), clusters.as_ref().map_err(String::as_str), typed, error, limit)
        }
    };
    html(status, markup)
}

/// A job form sent: checked, packed and submitted as the user; its page on success, else the
/// form again with the message, and nothing submitted.
async fn submit(state: &Portal, user: &User, page: Page, request: Request) -> Response {
    let limit = state.config.max_upload;
    let refuse = |typed: Typed, status: StatusCode, message: String| async move {
        form_page(state, user, page, &typed, Some(&message), status).await
    };
    let declared = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if let Some(length) = declared.filter(|&length| length > limit) {
        drain(request.into_body(), DRAIN_AT_MOST).await;
        return refuse(Typed::default(), StatusCode::PAYLOAD_TOO_LARGE, too_large(Some(length), limit)).await;
    }
    let mut multipart = match Multipart::from_request(request, &()).await {
        Ok(multipart) => multipart,
        Err(rejection) => {
            let message = format!("The form did not come as an upload (multipart/form-data): {rejection}");
            return refuse(Typed::default(), StatusCode::BAD_REQUEST, message).await;
        }
    };
    let mut parts = Vec::new();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return refuse(form::typed(&parts), e.status(), too_large(None, limit)).await
            }
            Err(e) => {
                let message = format!("The upload broke off ({}); nothing was submitted: try again.", e.body_text());
                return refuse(form::typed(&parts), StatusCode::BAD_REQUEST, message).await;
            }
        };
        let name = field.name().unwrap_or_default().to_string();
        let file_name = field.file_name().map(String::from);
        match field.bytes().await {
            Ok(data) => parts.push(Part { name, file_name, data: data.to_vec() }),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return refuse(form::typed(&parts), e.status(), too_large(None, limit)).await
            }
            Err(e) => {
                let message = format!("The upload broke off ({}); nothing was submitted: try again.", e.body_text());
                return refuse(form::typed(&parts), StatusCode::BAD_REQUEST, message).await;
            }
        }
    }
    let typed = form::typed(&parts);
    let csrf = parts.iter().find(|p| p.name == "csrf" && p.file_name.is_none());
    if !user.csrf_ok(csrf.and_then(|p| std::str::from_utf8(&p.data).ok())) {
        let message = "This form is out of date (or did not come from this portal's page): nothing was submitted. \
                       Submit it again from this page.";
        return refuse(typed, StatusCode::FORBIDDEN, message.into()).await;
    }
    let job_form = match form::parse(&parts, user.name(), page) {
        Ok(job_form) => job_form,
        Err(e) => return refuse(typed, StatusCode::BAD_REQUEST, format!("{e}. Nothing was submitted.")).await,
    };
    drop(parts);
    let bundle = match tokio::task::spawn_blocking(move || wan::bundle_of(&job_form)).await {
        Ok(Ok(bundle)) => bundle,
        Ok(Err(e)) => return refuse(typed, StatusCode::BAD_REQUEST, format!("{e}. Nothing was submitted.")).await,
        Err(e) => return refuse(typed, StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).await,
    };
    match state.wan.submit(bundle).await {
        Ok(job) => Redirect::to(&format!("/jobs/{}", job.id)).into_response(),
        Err(ClientError::Refused { code, message, .. }) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
            refuse(typed, status, format!("The WAN manager refused the job: {message}")).await
        }
        Err(e) => refuse(typed, StatusCode::BAD_GATEWAY, format!("The job was not submitted: {e}.")).await,
    }
}

/// The message of an upload over the limit.
fn too_large(length: Option<u64>, limit: u64) -> String {
    let size = length.map_or("more than that".to_string(), |l| Bytes(l).to_string());
    format!(
        "The upload is too large: this portal takes at most {} in one form, and this one is {size}. Nothing was \
         submitted; upload smaller files (or ask for a larger --max-upload).",
        Bytes(limit)
    )
}

/// Reads and drops what is left of a body (at most `most` bytes), so that the browser, which
/// is still sending it, reads the reply instead of a reset connection.
async fn drain(mut body: Body, most: u64) {
    use http_body_util::BodyExt as _;
    let mut seen = 0u64;
    while let Some(Ok(frame)) = body.frame().await {
        seen += frame.data_ref().map_or(0, |d| d.len() as u64);
        if seen > most {
            break;
        }
    }
}

async fn api_clusters(State(state): State<AppState>, _user: User) -> Response {
    match state.wan.status().await {
        Ok(status) => Json(live::clusters(&status)).into_response(),
        Err(e) => (StatusCode::BAD_GATEWAY, Json(error_json(&e.to_string()))).into_response(),
    }
}

// --- Jobs ---

/// A job id as a path gives it (digits only).
fn parse_id(text: &str) -> Option<JobId> {
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())).then(|| text.parse().ok().map(JobId))?
}

fn no_such_job(user: &User, id: &str) -> Response {
    html(StatusCode::NOT_FOUND, view::not_found(Some(user.who()), &format!("You have no job {id}.")))
}

/// Why a page about a job could not be made.
enum JobPageError {
    NotFound,
    Manager(ClientError),
}

impl From<WanError> for JobPageError {
    fn from(e: WanError) -> Self {
        match e {
            WanError::NotFound => JobPageError::NotFound,
            WanError::Manager(e) => JobPageError::Manager(e),
        }
    }
}

impl From<ClientError> for JobPageError {
    fn from(e: ClientError) -> Self {
        JobPageError::Manager(e)
    }
}

impl JobPageError {
    fn page(self, user: &User, id: &str) -> Response {
        match self {
            JobPageError::NotFound => no_such_job(user, id),
            JobPageError::Manager(e) => html(
                StatusCode::BAD_GATEWAY,
                view::failure(Some(user.who()), "The WAN manager did not answer", &e.to_string()),
            ),
        }
    }
}

/// Job `id` (as the path has it) if it is the user's.
async fn users_job(state: &Portal, user: &User, id: &str) -> Result<JobStatus, JobPageError> {
    let id = parse_id(id).ok_or(JobPageError::NotFound)?;
    Ok(state.wan.job_of(user.name(), id).await?)
}

async fn jobs_page(State(state): State<AppState>, user: User) -> Response {
    let jobs = state.wan.jobs_of(user.name()).await.map_err(|e| e.to_string());
    html(StatusCode::OK, view::jobs(user.who(), jobs.as_deref().map_err(String::as_str)))
}

/// A job's live view, with the statistics' points after `after_ms`.
fn job_live(fetched: &Fetched, after_ms: Option<u64>) -> live::JobLive {
    let stats = fetched.stats.as_ref().and_then(|s| live::stats(s, after_ms));
    live::job(&fetched.job, unix_now(), &fetched.stdout, &fetched.stderr, stats)
}

/// Job `id` (as the path has it) if it is the user's, with its logs and statistics, as the
/// pages polling it share it.
async fn users_watched_job(state: &Portal, user: &User, id: &str) -> Result<Arc<Fetched>, JobPageError> {
    let id = parse_id(id).ok_or(JobPageError::NotFound)?;
    Ok(state.watched.get(&state.wan, user.name(), id).await?)
}

async fn job_page(State(state): State<AppState>, user: User, Path(id): Path<String>) -> Response {
    match users_watched_job(&state, &user, &id).await {
        Ok(fetched) => {
            let live = job_live(&fetched, None);
            html(StatusCode::OK, view::job(user.who(), &fetched.job, &live))
        }
        Err(e) => e.page(&user, &id),
    }
}

async fn api_job(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let after = query.get("after").and_then(|a| a.parse().ok());
    match users_watched_job(&state, &user, &id).await {
        Ok(fetched) => Json(job_live(&fetched, after)).into_response(),
        Err(JobPageError::NotFound) => (StatusCode::NOT_FOUND, Json(error_json("not found"))).into_response(),
        Err(JobPageError::Manager(e)) => (StatusCode::BAD_GATEWAY, Json(error_json(&e.to_string()))).into_response(),
    }
}

async fn cancel(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
    Form(fields): Form<HashMap<String, String>>,
) -> Response {
    if !user.csrf_ok(fields.get("csrf").map(String::as_str)) {
        return stale_form(&user);
    }
    let cancelled = async {
        let job = users_job(&state, &user, &id).await?;
        Ok::<_, JobPageError>(state.wan.cancel(job.id).await?)
    };
    match cancelled.await {
        Ok(job) => Redirect::to(&format!("/jobs/{}", job.id)).into_response(),
        Err(e) => e.page(&user, &id),
    }
}

// --- Downloads ---

async fn downloads_page(State(state): State<AppState>, user: User) -> Response {
    let jobs = state.wan.jobs_of(user.name()).await.map_err(|e| e.to_string());
    html(StatusCode::OK, view::downloads(user.who(), jobs.as_deref().map_err(String::as_str)))
}

/// An ended job's outputs; none before it has ended.
async fn outputs_of(state: &Portal, job: &JobStatus) -> Result<Vec<(String, Vec<u8>)>, ClientError> {
    if job.state.is_final() {
        state.wan.outputs(job.id).await
    } else {
        Ok(Vec::new())
    }
}

async fn folder_page(State(state): State<AppState>, user: User, Path(id): Path<String>) -> Response {
    let folder = async {
        let job = users_job(&state, &user, &id).await?;
        let outputs = outputs_of(&state, &job).await?;
        Ok::<_, JobPageError>((job, outputs))
    };
    let (job, outputs) = match folder.await {
        Ok(found) => found,
        Err(e) => return e.page(&user, &id),
    };
    let mut files: Vec<FolderFile> = outputs
        .iter()
        .map(|(name, data)| FolderFile {
            name: name.clone(),
            bytes: data.len() as u64,
            href: format!("/downloads/{}/files/{name}", job.id),
        })
        .collect();
    for (stream, bytes) in [(Stream::Stdout, job.stdout_bytes), (Stream::Stderr, job.stderr_bytes)] {
        let name = wan::log_name(job.id, stream, &outputs);
        files.push(FolderFile { name, bytes, href: format!("/downloads/{}/{}", job.id, stream.name()) });
    }
    let missing: Vec<&str> =
        job.outputs.iter().filter(|o| !outputs.iter().any(|(n, _)| n == *o)).map(String::as_str).collect();
    let note = if !job.state.is_final() {
        Some(format!(
            "Job {} is {}: its outputs come when it has ended; its logs so far are here.",
            job.id,
            live::state_name(job.state)
        ))
    } else if !missing.is_empty() {
        Some(format!("It did not write {}.", missing.join(", ")))
    } else {
        None
    };
    html(StatusCode::OK, view::folder(user.who(), &job, &files, note.as_deref()))
}

/// A file to save, not to show.
fn attachment(name: &str, content_type: &'static str, bytes: Vec<u8>) -> Response {
    // Names here are flat names (`A-Z a-z 0-9 . _ + -`): nothing to quote.
    let disposition = format!("attachment; filename=\"{name}\"");
    ([(header::CONTENT_TYPE, content_type.to_string()), (header::CONTENT_DISPOSITION, disposition)], bytes)
        .into_response()
}

async fn download_archive(State(state): State<AppState>, user: User, Path(id): Path<String>) -> Response {
    let archive = async {
        let job = users_job(&state, &user, &id).await?;
        let outputs = outputs_of(&state, &job).await?;
        let (stdout, stderr) =
            tokio::try_join!(state.wan.log(job.id, Stream::Stdout), state.wan.log(job.id, Stream::Stderr))?;
        let archive = wan::folder_archive(job.id, &outputs, &stdout, &stderr);
        Ok::<_, JobPageError>((job.id, archive))
    };
    match archive.await {
        Ok((id, Ok(archive))) => attachment(&format!("job-{id}.tar"), dlm_wan::client::TAR, archive),
        Ok((_, Err(e))) => {
            html(StatusCode::INTERNAL_SERVER_ERROR, view::failure(Some(user.who()), "No archive", &e.to_string()))
        }
        Err(e) => e.page(&user, &id),
    }
}

async fn download_log(state: &Portal, user: &User, id: &str, stream: Stream) -> Response {
    let log = async {
        let job = users_job(state, user, id).await?;
        let outputs = outputs_of(state, &job).await.unwrap_or_default();
        let bytes = state.wan.log(job.id, stream).await?;
        Ok::<_, JobPageError>((wan::log_name(job.id, stream, &outputs), bytes))
    };
    match log.await {
        Ok((name, bytes)) => attachment(&name, "application/octet-stream", bytes),
        Err(e) => e.page(user, id),
    }
}

async fn download_stdout(State(state): State<AppState>, user: User, Path(id): Path<String>) -> Response {
    download_log(&state, &user, &id, Stream::Stdout).await
}

async fn download_stderr(State(state): State<AppState>, user: User, Path(id): Path<String>) -> Response {
    download_log(&state, &user, &id, Stream::Stderr).await
}

async fn download_file(
    State(state): State<AppState>,
    user: User,
    Path((id, name)): Path<(String, String)>,
) -> Response {
    let file = async {
        let job = users_job(&state, &user, &id).await?;
        let outputs = outputs_of(&state, &job).await?;
        Ok::<_, JobPageError>(outputs.into_iter().find(|(n, _)| *n == name))
    };
    match file.await {
        Ok(Some((name, bytes))) => attachment(&name, "application/octet-stream", bytes),
        Ok(None) => html(
            StatusCode::NOT_FOUND,
            view::not_found(Some(user.who()), &format!("Job {id} has no output {name} (yet).")),
        ),
        Err(e) => e.page(&user, &id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_sends_the_browser_back_only_within_the_portal() {
        assert_eq!(safe_next(Some("/jobs/3")), "/jobs/3");
        assert_eq!(safe_next(Some("/downloads/3/files/a+b.dat")), "/downloads/3/files/a+b.dat");
        for bad in ["//evil.example/x", "https://evil.example", "/\\evil", "jobs", "/login?next=/x", "/a b", ""] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_next(None), "/");
        assert_eq!(percent_encode("/jobs/3?after=1&x=a+b"), "/jobs/3%3Fafter%3D1%26x%3Da%2Bb");
    }

    #[test]
    fn job_ids_are_digits() {
        assert_eq!(parse_id("12"), Some(JobId(12)));
        for bad in ["", "-1", "1e3", "12a", "99999999999999999999999", " 1"] {
            assert_eq!(parse_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_upload_limit_message_names_both_sizes() {
        assert_eq!(
            too_large(Some(300 << 20), 256 << 20),
            "The upload is too large: this portal takes at most 256 MiB in one form, and this one is 300 MiB. \
             Nothing was submitted; upload smaller files (or ask for a larger --max-upload)."
        );
    }
}
