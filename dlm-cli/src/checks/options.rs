//! The `DLM_*` environment variables, read by the runtime's own option parser: a bad size or an
//! unknown name stops a DLM program at startup.

use crate::report::Finding;
use dlm::config::{self, Config};
use std::path::Path;

/// The `DLM_*` variables of this environment but `DLM_MEMFILE` (the memfile check owns it).
pub struct DlmEnvironment(Vec<(String, String)>);

impl DlmEnvironment {
    pub fn read() -> Self {
        DlmEnvironment(std::env::vars().filter(|(name, _)| name.starts_with("DLM_") && name != "DLM_MEMFILE").collect())
    }

    /// The options a DLM program would start with, given this environment and `memfile`.
    pub fn parse(&self, memfile: Option<&Path>) -> Result<Config, config::ConfigError> {
        let mut vars = self.0.clone();
        vars.extend(memfile.map(|path| ("DLM_MEMFILE".to_string(), path.display().to_string())));
        config::from_env_and_args(vars, &["dlm".to_string()]).map(|(config, _)| config)
    }
}

/// The finding, and the options a program would use (the defaults if the variables are bad).
pub fn check(environment: &DlmEnvironment) -> (Finding, Config) {
    const TOPIC: &str = "DLM options";
    match environment.parse(None) {
        Ok(config) => {
            let detail = if environment.0.is_empty() {
                "no DLM_* variables set: the defaults apply".to_string()
            } else {
                let set: Vec<String> = environment.0.iter().map(|(name, value)| format!("{name}={value}")).collect();
                format!("{} read", set.join(" "))
            };
            (Finding::ok(TOPIC, detail), config)
        }
        Err(error) => {
            let finding = Finding::failure(
                TOPIC,
                error.to_string(),
                "fix or unset that variable (a DLM program lists its options with `PROGRAM -- --help`)",
            );
            (finding, DlmEnvironment(Vec::new()).parse(None).expect("the defaults always parse"))
        }
    }
}
