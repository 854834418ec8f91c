//! `dlm portal`: the web portal (`dlm_portal`) in the foreground, its logins checked by PAM.
//! Nothing else of the product can log a user in: the portal's other authenticator is its
//! tests' own.

use crate::launch::euid;
use dlm_portal::auth::Pam;
use dlm_portal::PortalConfig;
use dlm_units::Bytes;
use std::path::Path;
use std::sync::Arc;

/// `dlm portal`: serves until SIGINT or SIGTERM.
pub fn run(config: PortalConfig, pam_service: &str) -> anyhow::Result<()> {
    if euid() != 0 {
        eprintln!(
            "dlm portal: warning: not running as root: PAM checks only this account's own password, and the WAN \
             manager refuses jobs for any other user; run the portal as root"
        );
    }
    if !Path::new("/etc/pam.d").join(pam_service).exists() {
        eprintln!(
            "dlm portal: warning: no /etc/pam.d/{pam_service}: PAM applies /etc/pam.d/other instead; install \
             dlm-portal/pam/dlm-portal there (`scripts/install.sh --pam` does)"
        );
    }
    let (wan, idle, limit) = (config.wan.address().clone(), config.session_idle, config.max_upload);
    dlm_portal::run(config, Arc::new(Pam::new(pam_service)), |addr| {
        eprintln!(
            "dlm portal: http://{addr}/ for the WAN manager at {wan}; logins by PAM service {pam_service}, sessions \
             end after {} min idle, uploads up to {}",
            idle.as_secs() / 60,
            Bytes(limit)
        )
    })?;
    Ok(())
}
