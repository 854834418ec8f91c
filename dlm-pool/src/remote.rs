//! A command line run on another host of the cluster, the way Open MPI reaches hosts: through
//! its remote shell (`OMPI_MCA_plm_rsh_agent`, else ssh). `dlm pool up` starts each server's
//! mpirun this way, and the cluster's manager samples its compute nodes and runs DLM-WAN's jobs
//! on them this way, so a cluster needs no agent of DLM's own on its nodes.

use crate::identity::hostname;
use std::process::Command;

/// Open MPI's remote shell: the first agent of `OMPI_MCA_plm_rsh_agent` (its first choice),
/// else ssh.
pub fn remote_shell() -> Vec<String> {
    let agent = std::env::var("OMPI_MCA_plm_rsh_agent").unwrap_or_default();
    let first = agent.split(':').next().unwrap_or_default().split_whitespace().map(str::to_string).collect::<Vec<_>>();
    if first.is_empty() {
        vec!["ssh".into()]
    } else {
        first
    }
}

/// Whether `host` names this machine (then nothing goes through the remote shell).
pub fn is_this_host(host: &str) -> bool {
    host == "localhost" || host == "127.0.0.1" || host == hostname()
}

/// `word` quoted for a POSIX shell.
pub fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}

/// Words quoted and joined into one command line.
pub fn command_line<S: AsRef<str>>(words: &[S]) -> String {
    words.iter().map(|w| shell_quote(w.as_ref())).collect::<Vec<_>>().join(" ")
}

/// `sh -c LINE` on `host`: here directly, elsewhere through the remote shell (which, like
/// ssh, hands the line to the remote user's shell and passes no environment).
pub fn on_host(host: &str, line: &str) -> Command {
    if is_this_host(host) {
        let mut command = Command::new("sh");
        command.arg("-c").arg(line);
        return command;
    }
    let agent = remote_shell();
    let mut command = Command::new(&agent[0]);
    command.args(&agent[1..]).arg(host).arg(line);
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_survive_the_shell() {
        let line = command_line(&["printf", "%s|", "it's", "$HOME", "a b"]);
        let out = on_host("localhost", &line).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "it's|$HOME|a b|");
    }
}
