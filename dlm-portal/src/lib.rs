/*!
DLM's web portal (`dlm portal`): the cluster's users log in with their own account and run
programs through DLM-WAN's manager from a browser, memory first.

The portal is a web application in front of one WAN manager. It runs as root: root checks any
user's password (PAM) and the WAN manager lets root submit jobs as another user
(`JobSpec.user`), who then owns them. Every page acts for the user of its session only: a job
of another user is "not found", exactly as an unknown one. docs/PORTAL.md describes the pages,
the options and the security model.

Its pages are rendered on the server (HTML, escaped by construction); one small script
(`assets/portal.js`) polls the portal's JSON routes to keep the clusters' memory, a job's state,
logs and paging statistics live, and draws the plots on `<canvas>`. Nothing is loaded from
elsewhere: the stylesheet and the script are compiled into the binary.

Modules:
- `auth`: who may log in: the [`Authenticator`](auth::Authenticator) trait and its PAM
  implementation, the product's only one.
- `session`: server-side sessions (random 128-bit ids in a cookie, expiring when idle), their
  CSRF tokens, and the cookies.
- `form`: a job's form (Autorun and Interactive) read into a job description and its files;
  every name checked.
- `wan`: the portal's calls to the WAN manager, for the user of a session (their jobs only),
  and a job's folder as one archive.
- `watched`: the last fetch of each job that pages watch, shared by all of them (one fetch per
  half second however many poll it).
- `live`: the JSON that the pages' script polls (clusters, a job's live view).
- `view`: the HTML of every page.
- `routes`: the router: each route's handler, the session extractor, the upload limit.
- `assets`: the stylesheet and the script, served from the binary.
*/

pub mod assets;
pub mod auth;
pub mod form;
pub mod live;
pub mod routes;
pub mod session;
pub mod view;
pub mod wan;
pub mod watched;

use auth::Authenticator;
use dlm_wan::client::WanClient;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use routes::router;

/// The address the portal listens on when none is given.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// A session ends after this long without a page being asked for, when not told otherwise.
pub const DEFAULT_SESSION_IDLE: Duration = Duration::from_secs(30 * 60);

/// The PAM service whose policy checks the passwords, when not told otherwise
/// (`/etc/pam.d/dlm-portal`: the system's `common-auth` and `common-account`).
pub const DEFAULT_PAM_SERVICE: &str = "dlm-portal";

/// What the portal serves and for whom.
#[derive(Debug, Clone)]
pub struct PortalConfig {
    pub listen: SocketAddr,
    /// The WAN manager the jobs go to.
    pub wan: WanClient,
    /// A session ends after this long without a page (polling does not count).
    pub session_idle: Duration,
    /// The largest job form taken, in bytes, all its files together.
    pub max_upload: u64,
    /// Cookies only over HTTPS (`Secure`): for a portal behind a TLS proxy.
    pub secure_cookies: bool,
}

/// Why the portal could not start, or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PortalError {
    #[error("cannot listen on {addr}: {source}; give another address with --listen")]
    Listen { addr: SocketAddr, source: io::Error },
    #[error("cannot start the portal's event loop or signal handlers: {0}")]
    Runtime(io::Error),
    #[error("serving the portal failed: {0}")]
    Serve(io::Error),
}

/// Runs the portal in the foreground until SIGINT or SIGTERM; `ready` is called with the bound
/// address once it listens.
pub fn run(
    config: PortalConfig,
    auth: Arc<dyn Authenticator>,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), PortalError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(PortalError::Runtime)?;
    runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| PortalError::Listen { addr: config.listen, source })?;
        let addr = listener.local_addr().map_err(PortalError::Serve)?;
        let mut terminate = signal(SignalKind::terminate()).map_err(PortalError::Runtime)?;
        let mut interrupt = signal(SignalKind::interrupt()).map_err(PortalError::Runtime)?;
        let service = router(config, auth).into_make_service_with_connect_info::<SocketAddr>();
        ready(addr);
        axum::serve(listener, service)
            .with_graceful_shutdown(async move {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = interrupt.recv() => {}
                }
            })
            .await
            .map_err(PortalError::Serve)
    })
}
