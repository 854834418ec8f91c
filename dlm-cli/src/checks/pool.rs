//! The memory pool named by `DLM_POOL` (when it is set): its manager answers (over TCP that
//! needs a MUNGE credential made here), it serves, its servers are up with room, and it has
//! the MPI rendezvous that programs need to reach them (a pool started by `dlm pool up`).

use crate::report::Finding;
use dlm_pool::client::{munge_credential, Address, PoolClient};
use dlm_pool::proto::{Phase, ServerState, Status};
use dlm_units::Bytes;

/// The findings for the pool at `DLM_POOL`, none when it is not set.
pub fn check() -> Vec<Finding> {
    match std::env::var("DLM_POOL") {
        Ok(text) if !text.trim().is_empty() => check_at(&Address::parse(text.trim())),
        _ => Vec::new(),
    }
}

fn check_at(address: &Address) -> Vec<Finding> {
    let mut findings = Vec::new();
    if let Address::Tcp(_) = address {
        match munge_credential(None) {
            Ok(_) => findings.push(Finding::ok("pool credential", "munge makes a credential for the manager")),
            Err(e) => {
                findings.push(Finding::failure(
                    "pool credential",
                    e.to_string(),
                    "install Debian's `munge` package, give every host the same /etc/munge/munge.key and start \
                     munged; or set DLM_POOL to the manager's Unix socket on its own host",
                ));
                return findings;
            }
        }
    }
    match PoolClient::new(address.clone()).status() {
        Ok(status) => findings.extend(status_findings(address, &status)),
        Err(e) => findings.push(Finding::failure(
            "pool manager",
            e.to_string(),
            format!(
                "start the pool with `dlm pool up POOLCONF` on the manager's host, or set DLM_POOL to where it \
                 listens (now {address})"
            ),
        )),
    }
    findings
}

/// What the status says about the pool's readiness for programs.
fn status_findings(address: &Address, status: &Status) -> Vec<Finding> {
    let mut findings = vec![match status.phase {
        Phase::Serving => Finding::ok("pool manager", format!("{address} answers and serves")),
        Phase::Rebuilding => Finding::warning(
            "pool manager",
            format!("{address} answers but is rebuilding its accounting after a start"),
            "wait a few seconds: programs that start now wait for it",
        ),
        Phase::Stopping => Finding::failure(
            "pool manager",
            format!("{address} is stopping (`dlm pool down`)"),
            "start the pool again with `dlm pool up POOLCONF`",
        ),
    }];
    let up: Vec<_> = status.servers.iter().filter(|s| s.state == ServerState::Up).collect();
    let available: u64 = up.iter().map(|s| s.available_bytes).sum();
    let not_up: Vec<String> = status
        .servers
        .iter()
        .filter(|s| s.state != ServerState::Up)
        .map(|s| format!("{} on {}", s.id, s.host))
        .collect();
    findings.push(if up.is_empty() || available == 0 {
        Finding::failure(
            "pool servers",
            format!("{} of {} servers up, {} available", up.len(), status.servers.len(), Bytes(available)),
            "see `dlm pool status` and the servers' logs (RUNDIR/server-N.log); restart the pool with `dlm pool up`",
        )
    } else if !not_up.is_empty() {
        Finding::warning(
            "pool servers",
            format!(
                "{} of {} servers up ({} available); not up: {}",
                up.len(),
                status.servers.len(),
                Bytes(available),
                not_up.join(", ")
            ),
            "programs use the others; see `dlm pool status` and those servers' logs",
        )
    } else {
        Finding::ok("pool servers", format!("all {} servers up, {} available", up.len(), Bytes(available)))
    });
    findings.push(match &status.rendezvous {
        Some(uri) => Finding::ok("pool rendezvous", format!("ompi-server {uri}")),
        None => Finding::failure(
            "pool rendezvous",
            "the manager has no MPI rendezvous: it was started with `dlm pool manager`, so programs cannot join",
            "stop it (`dlm pool down`) and start the pool with `dlm pool up POOLCONF`",
        ),
    });
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Status as Level;
    use dlm_pool::proto::{ServerId, ServerStatus};

    fn status(states: &[ServerState], rendezvous: Option<&str>) -> Status {
        let servers = states
            .iter()
            .enumerate()
            .map(|(i, &state)| ServerStatus {
                id: ServerId(i as u32),
                host: format!("h{i}"),
                pid: None,
                endpoint: None,
                state,
                down_reason: None,
                cap_bytes: 1 << 30,
                used_bytes: 0,
                held_bytes: 0,
                available_bytes: if state == ServerState::Up { 1 << 30 } else { 0 },
                mem_available_bytes: None,
                load: 0.0,
                loadavg: None,
                clients: vec![],
            })
            .collect();
        Status { phase: Phase::Serving, servers, clients: vec![], rendezvous: rendezvous.map(String::from) }
    }

    fn levels(findings: &[Finding]) -> Vec<Level> {
        findings.iter().map(|f| f.status).collect()
    }

    #[test]
    fn a_ready_pool_passes_and_a_bare_manager_fails_on_its_rendezvous() {
        let address = Address::Unix("/run/dlm/pool.sock".into());
        let ready = status_findings(&address, &status(&[ServerState::Up, ServerState::Up], Some("uri")));
        assert_eq!(levels(&ready), [Level::Ok, Level::Ok, Level::Ok]);
        let bare = status_findings(&address, &status(&[ServerState::Up, ServerState::Down], None));
        assert_eq!(levels(&bare), [Level::Ok, Level::Warning, Level::Failure]);
        assert!(bare[1].detail.contains("not up: 1 on h1"), "{}", bare[1].detail);
        let empty = status_findings(&address, &status(&[ServerState::Down], Some("uri")));
        assert_eq!(empty[1].status, Level::Failure);
    }

    #[test]
    fn an_unreachable_manager_says_to_start_the_pool() {
        let findings = check_at(&Address::Unix("/nonexistent/pool.sock".into()));
        assert_eq!(levels(&findings), [Level::Failure]);
        assert!(findings[0].advice.as_deref().unwrap().contains("dlm pool up"));
    }
}
