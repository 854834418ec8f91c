//! Who may log in: an [`Authenticator`] checks a user name and password. The product's only
//! implementation is [`Pam`], the system's own policy for the cluster's accounts; the tests
//! bring their own (a fixed password), which the `dlm` binary cannot reach.
//!
//! [`Pam`] asks the PAM service [`DEFAULT_PAM_SERVICE`](crate::DEFAULT_PAM_SERVICE)
//! (`/etc/pam.d/dlm-portal`, from `dlm-portal/pam/dlm-portal`, which `scripts/install.sh
//! --pam` installs: `@include common-auth` and `common-account`), not `login`: `login`'s stack
//! is a console's (securetty, nologin, a fixed 3 s fail delay, lastlog and motd sessions), and
//! a service of its own lets an administrator give the portal a policy of its own (e.g.
//! pam_faillock, or no root) without touching the console's. It authenticates
//! (`pam_authenticate`, empty passwords refused) and checks the account (`pam_acct_mgmt`:
//! expired, locked); it opens no PAM session, since the portal starts no process as the user
//! (the WAN manager runs the jobs).

use pam_client::conv_mock::Conversation;
use pam_client::{Context, ErrorCode, Flag};
use std::net::IpAddr;

/// Checks a user's password.
pub trait Authenticator: Send + Sync + 'static {
    /// `Ok` when `password` is `user`'s and the account may log in now. It may block (PAM
    /// sleeps after a failure): the portal calls it off its event loop. `remote` is the
    /// browser's address, for the system's logs.
    fn authenticate(&self, user: &str, password: &str, remote: Option<IpAddr>) -> Result<(), AuthError>;
}

/// Why a login failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Wrong name or password, unknown user, or an account that may not log in; the page does
    /// not say which.
    #[error("the user name or the password is wrong")]
    Refused,
    /// The password was right but has expired: it must be changed elsewhere first.
    #[error("your password has expired; change it (e.g. with `passwd` over ssh), then log in again")]
    Expired,
    /// The check itself could not be made (PAM's configuration, a module's failure).
    #[error("the password could not be checked: {0}")]
    Unavailable(String),
}

/// Whether `name` may be a user name at all (checked before anything asks PAM): 1 to 32 of
/// `a-z A-Z 0-9 . _ -`, not starting with `-` (the system's accounts are spelled so).
pub fn plausible_user(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && !name.starts_with('-')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// The system's PAM policy of one service.
#[derive(Debug, Clone)]
pub struct Pam {
    service: String,
}

impl Pam {
    /// Checks passwords with `/etc/pam.d/SERVICE` (PAM reads `other` where it is missing).
    pub fn new(service: impl Into<String>) -> Self {
        Pam { service: service.into() }
    }

    pub fn service(&self) -> &str {
        &self.service
    }
}

impl Authenticator for Pam {
    fn authenticate(&self, user: &str, password: &str, remote: Option<IpAddr>) -> Result<(), AuthError> {
        if !plausible_user(user) || password.contains('\0') {
            return Err(AuthError::Refused);
        }
        let conversation = Conversation::with_credentials(user, password);
        let mut context = Context::new(&self.service, Some(user), conversation)
            .map_err(|e| AuthError::Unavailable(format!("PAM service {}: {e}", self.service)))?;
        if let Some(ip) = remote {
            // Only for the system's logs (pam_unix names the remote host of a failure).
            let _ = context.set_rhost(Some(&ip.to_string()));
        }
        context.authenticate(Flag::DISALLOW_NULL_AUTHTOK).map_err(|e| refusal(e.code(), &e.to_string()))?;
        context.acct_mgmt(Flag::DISALLOW_NULL_AUTHTOK).map_err(|e| refusal(e.code(), &e.to_string()))
    }
}

/// What a PAM error code means for the login page.
fn refusal(code: ErrorCode, message: &str) -> AuthError {
    match code {
        ErrorCode::AUTH_ERR
        | ErrorCode::USER_UNKNOWN
        | ErrorCode::PERM_DENIED
        | ErrorCode::ACCT_EXPIRED
        | ErrorCode::MAXTRIES
        | ErrorCode::CRED_INSUFFICIENT => AuthError::Refused,
        ErrorCode::NEW_AUTHTOK_REQD | ErrorCode::AUTHTOK_EXPIRED => AuthError::Expired,
        _ => AuthError::Unavailable(message.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_are_checked_before_pam() {
        for good in ["alice", "bob.smith", "svc_dlm", "u1000", "a-b"] {
            assert!(plausible_user(good), "{good}");
        }
        for bad in ["", "-rf", "al ice", "root\0", "a/b", "é", &"x".repeat(33)] {
            assert!(!plausible_user(bad), "{bad:?}");
        }
    }

    #[test]
    fn pam_refuses_an_implausible_name_without_asking() {
        assert_eq!(Pam::new("dlm-portal").authenticate("../x", "pw", None), Err(AuthError::Refused));
    }

    #[test]
    fn pam_codes_become_the_pages_reasons() {
        assert_eq!(refusal(ErrorCode::AUTH_ERR, "x"), AuthError::Refused);
        assert_eq!(refusal(ErrorCode::USER_UNKNOWN, "x"), AuthError::Refused);
        assert_eq!(refusal(ErrorCode::NEW_AUTHTOK_REQD, "x"), AuthError::Expired);
        assert_eq!(refusal(ErrorCode::SYSTEM_ERR, "System error"), AuthError::Unavailable("System error".into()));
    }
}
