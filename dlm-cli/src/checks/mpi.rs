//! Open MPI: DLM's memory servers are MPI processes, started by `mpirun` or spawned by the
//! program (`MPI_Comm_spawn`, which Open MPI has and MPICH lacks), and the runtime selects Open
//! MPI's UCX transport (`pml` and `osc` components `ucx`), the one that reaches spawned servers
//! through shared memory.

use crate::report::Finding;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What the MPI check found, and where `mpirun` is for the checks that launch with it.
pub struct Mpi {
    pub findings: Vec<Finding>,
    pub mpirun: Option<PathBuf>,
}

const INSTALL_ADVICE: &str = "install Open MPI (Debian, Ubuntu: apt-get install openmpi-bin libopenmpi-dev; \
                              on a cluster: module load openmpi) so that mpirun and ompi_info are on PATH";

pub fn check() -> Mpi {
    let mpirun = find_on_path("mpirun");
    let mut findings = vec![match &mpirun {
        Some(path) => Finding::ok("mpirun", path.display().to_string()),
        None => Finding::failure("mpirun", "not found on PATH", INSTALL_ADVICE),
    }];
    findings.extend(open_mpi());
    Mpi { findings, mpirun }
}

/// The version of Open MPI and its UCX components, from `ompi_info --parsable`.
fn open_mpi() -> Vec<Finding> {
    let output = match Command::new("ompi_info").arg("--parsable").output() {
        Ok(output) if output.status.success() => String::from_utf8_lossy(&output.stdout).into_owned(),
        Ok(output) => {
            let why = format!("ompi_info --parsable failed ({}): {}", output.status, excerpt(&output.stderr));
            return vec![Finding::failure("Open MPI", why, INSTALL_ADVICE)];
        }
        Err(e) => return vec![Finding::failure("Open MPI", format!("cannot run ompi_info: {e}"), INSTALL_ADVICE)],
    };
    let Some(version) = output.lines().find_map(|l| l.strip_prefix("ompi:version:full:")) else {
        return vec![Finding::failure(
            "Open MPI",
            "ompi_info does not describe Open MPI",
            "DLM needs Open MPI (MPICH cannot spawn memory servers); put Open MPI's bin directory first on PATH",
        )];
    };
    vec![Finding::ok("Open MPI", version.trim().to_string()), ucx(&output)]
}

/// Whether the UCX components that the runtime selects are there, where the user has not
/// chosen others (`OMPI_MCA_pml`, `OMPI_MCA_osc`).
fn ucx(ompi_info: &str) -> Finding {
    const TOPIC: &str = "UCX transport";
    const FRAMEWORKS: [&str; 2] = ["pml", "osc"];
    let chosen = |framework: &str| std::env::var(format!("OMPI_MCA_{framework}")).ok();
    let has = |framework: &str| ompi_info.lines().any(|l| l.starts_with(&format!("mca:{framework}:ucx:")));
    let missing: Vec<&str> = FRAMEWORKS.into_iter().filter(|fw| chosen(fw).is_none() && !has(fw)).collect();
    if !missing.is_empty() {
        return Finding::failure(
            TOPIC,
            format!(
                "Open MPI lacks the ucx {} component(s) that DLM selects: MPI would not start",
                missing.join(" and ")
            ),
            "install an Open MPI built with UCX (Debian's openmpi-bin is), or set OMPI_MCA_pml=ob1 OMPI_MCA_osc=rdma \
             (slower: TCP between the program and the servers it spawns)",
        );
    }
    let set: Vec<String> =
        FRAMEWORKS.into_iter().filter_map(|fw| chosen(fw).map(|value| format!("OMPI_MCA_{fw}={value}"))).collect();
    if set.is_empty() {
        Finding::ok(TOPIC, "Open MPI has the ucx pml and osc components, which the runtime selects")
    } else {
        Finding::ok(TOPIC, format!("{} set: DLM uses that instead of UCX", set.join(" ")))
    }
}

/// The first executable `name` in the directories of `PATH`.
fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The first lines of a command's error output that say something (Open MPI frames its
/// messages with lines of dashes), for a one-line message.
pub fn excerpt(output: &[u8]) -> String {
    const LINES: usize = 2;
    let text = String::from_utf8_lossy(output);
    let said = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.chars().all(|c| c == '-'));
    said.take(LINES).collect::<Vec<_>>().join(" / ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_skips_open_mpi_frames() {
        let stderr =
            b"ssh: connect to host h port 22: Connection refused\n-----\nORTE was unable to start.\nThis usually\n";
        assert_eq!(excerpt(stderr), "ssh: connect to host h port 22: Connection refused / ORTE was unable to start.");
    }
}
