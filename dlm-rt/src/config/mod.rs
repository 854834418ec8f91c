//! What the user asked for: the `DLM_*` environment variables and the options after `--`
//! (`options`), and the memfile of server hosts and their memory (`memfile`). Sizes are read by
//! `dlm-units`, as dlmcc and the `dlm` command read them.

pub mod memfile;
mod options;

pub use options::{from_env_and_args, Config, ConfigError, PoolRequest, DEFAULT_SPAWN_TIMEOUT};
