//! DLM options from the environment (`DLM_*`) and from the classic command-line form that follows
//! `--` on the program's command line (`./prog in.dat -- -l 256M -m 4G memfile`).
//! Arguments after `--` win over the environment.

use super::memfile::{Memfile, MemfileError};
use clap::{CommandFactory, Parser};
use dlm_units::{parse_size, Bytes, SizeError};
use std::path::PathBuf;

/// The DLM page sizes tried, largest first, when `DLM_PAGE_SIZE` is not set: a transparent
/// huge page where the kernel gives them (moved whole, docs/DESIGN.md), else 256 KiB.
const DEFAULT_PAGE_SIZES: [usize; 3] = [crate::sys::HUGE_PAGE, 256 << 10, 64 << 10];

/// The default page is the largest that the local budget holds this many times: a loop that
/// walks more arrays than there are resident pages would fault on every access.
const MIN_PAGES_IN_BUDGET: u64 = 64;

/// The environment variables DLM reads; any other `DLM_*` variable is rejected as a typo.
const ENV_VARS: [&str; 14] = [
    "DLM_POOL",
    "DLM_POOL_MEM",
    "DLM_JOB",
    "DLM_MEMFILE",
    "DLM_LOCAL_MEM",
    "DLM_SERVER_MEM",
    "DLM_PAGE_SIZE",
    "DLM_STATS",
    "DLM_STATS_JSON",
    "DLM_STATS_LIVE",
    "DLM_SPAWN_TIMEOUT",
    "DLM_MOVE_PAGES",
    "DLM_TEST_PAGER_PANIC",
    "DLM_WAN",
];

/// How long spawned memory servers may take to start when `DLM_SPAWN_TIMEOUT` is not set.
pub const DEFAULT_SPAWN_TIMEOUT: u64 = 60;

/// Everything the runtime was asked for.
#[derive(Debug, Clone)]
pub struct Config {
    /// Most bytes of DLM pages resident in the program's process; `None`: a quarter of the
    /// host's available memory.
    pub local_budget: Option<u64>,
    /// Bytes each memory server may give when the memfile does not say; `None`: half of the
    /// server host's available memory, shared by the servers on that host.
    pub server_mem: Option<u64>,
    /// The unit of paging, a multiple of the system page size.
    pub page_size: usize,
    pub memfile: Option<Memfile>,
    /// Join the memory pool whose manager this names, instead of spawning servers.
    pub pool: Option<PoolRequest>,
    /// Print a human summary on stderr at shutdown.
    pub stats: bool,
    /// Write a JSON object with the counters to this file at shutdown.
    pub stats_json: Option<PathBuf>,
    /// Append a JSON line with the live counters to this file every half second, and at
    /// shutdown (a thread of its own writes them).
    pub stats_live: Option<PathBuf>,
    /// Seconds that spawned memory servers may take to start.
    pub spawn_timeout: u64,
    /// Move pages into and out of place where the kernel can (`UFFDIO_MOVE`), else copy them.
    pub move_pages: bool,
    /// Test only: the pager thread panics at this fault (`DLM_TEST_PAGER_PANIC`), to check that
    /// a panic there ends the process instead of unwinding.
    pub pager_panic_at: Option<u64>,
}

/// What to ask a memory pool for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolRequest {
    /// The manager: `HOST[:PORT]` (TCP, with a MUNGE credential) or a Unix socket's path.
    pub manager: String,
    /// The program's total memory, the local budget included; `None`: four times the budget.
    pub total: Option<u64>,
    /// The cluster manager's job this program is [DLM_JOB, set by the manager that started it].
    pub job: Option<String>,
}

/// Why the options were rejected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name}={value}: {source}")]
    BadSize { name: &'static str, value: String, source: SizeError },
    #[error("{name}={value}: expected a whole number of seconds")]
    BadSeconds { name: &'static str, value: String },
    #[error("{name}={value}: expected a whole number")]
    BadCount { name: &'static str, value: String },
    #[error("{name}={value}: expected 0 or 1")]
    BadFlag { name: &'static str, value: String },
    #[error("unknown environment variable {name}; DLM reads {}", ENV_VARS.join(", "))]
    UnknownEnv { name: String },
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    HelpRequested(String),
    #[error("page size {page_size} must be a non-zero multiple of the system page size ({system})")]
    PageSize { page_size: u64, system: usize },
    #[error("local memory budget {} must hold at least two DLM pages of {}", Bytes(*budget), Bytes(*page_size as u64))]
    BudgetTooSmall { budget: u64, page_size: usize },
    #[error(transparent)]
    Memfile(#[from] MemfileError),
    #[error("a pool (-s/DLM_POOL) and a memfile give the memory servers twice; give one of them")]
    PoolAndMemfile,
}

/// The classic DLM options, given after `--`.
#[derive(Debug, Parser)]
#[command(
    name = "PROGRAM [ARGS...] --",
    no_binary_name = true,
    about = "DLM options (after `--` on the program's command line; the DLM_* environment variables set the same)",
    disable_version_flag = true
)]
struct DlmArgs {
    /// Local memory budget for DLM pages [DLM_LOCAL_MEM]
    #[arg(short = 'l', long = "local-mem", value_name = "SIZE", value_parser = parse_size)]
    local_mem: Option<u64>,
    /// Bytes each memory server may give when the memfile does not say [DLM_SERVER_MEM]; with a
    /// pool, the program's total memory, local budget included [DLM_POOL_MEM, default 4 × -l]
    #[arg(short = 'm', long = "server-mem", visible_alias = "mem", value_name = "SIZE", value_parser = parse_size)]
    server_mem: Option<u64>,
    /// Join the memory pool of this manager: HOST[:PORT] or a Unix socket's path [DLM_POOL]
    #[arg(short = 's', long = "pool", value_name = "MANAGER")]
    pool: Option<String>,
    #[arg(skip)]
    pool_mem: Option<u64>,
    #[arg(skip)]
    job: Option<String>,
    /// DLM page size, a multiple of the system page size [DLM_PAGE_SIZE]
    #[arg(short = 'p', long = "page-size", value_name = "SIZE", value_parser = parse_size)]
    page_size: Option<u64>,
    /// Print paging statistics on stderr at shutdown [DLM_STATS=1]
    #[arg(long = "stats")]
    stats: bool,
    /// Write paging statistics as JSON to PATH at shutdown [DLM_STATS_JSON]
    #[arg(long = "stats-json", value_name = "PATH")]
    stats_json: Option<PathBuf>,
    /// Append a JSON line of live paging statistics to PATH every 0.5 s and at shutdown [DLM_STATS_LIVE]
    #[arg(long = "stats-live", value_name = "PATH")]
    stats_live: Option<PathBuf>,
    /// Seconds spawned memory servers may take to start [DLM_SPAWN_TIMEOUT, default 60]
    #[arg(long = "spawn-timeout", value_name = "SECONDS")]
    spawn_timeout: Option<u64>,
    /// Copy fetched pages into place instead of moving them [DLM_MOVE_PAGES=0]
    #[arg(long = "copy-pages")]
    copy_pages: bool,
    /// Memory-server hosts and the bytes each may give [DLM_MEMFILE]
    #[arg(value_name = "MEMFILE")]
    memfile: Option<PathBuf>,
}

/// Splits `argv` at the first `--`: the program keeps what is before it.
/// Returns the options and how many leading arguments belong to the program.
pub fn from_env_and_args<I>(env: I, argv: &[String]) -> Result<(Config, usize), ConfigError>
where
    I: IntoIterator<Item = (String, String)>,
{
    let (mut args, split) = args_after_dashes(argv)?;
    let pager_panic_at = apply_env(&mut args, env)?;
    Ok((args.into_config(pager_panic_at)?, split))
}

/// The DLM options after the first `--` of `argv` (none if there is none), and where they start.
fn args_after_dashes(argv: &[String]) -> Result<(DlmArgs, usize), ConfigError> {
    let split = argv.iter().skip(1).position(|a| a == "--").map_or(argv.len(), |i| i + 1);
    if split == argv.len() {
        return Ok((DlmArgs::try_parse_from(std::iter::empty::<String>()).expect("no arguments always parse"), split));
    }
    let args = DlmArgs::try_parse_from(&argv[split + 1..]).map_err(|e| match e.kind() {
        clap::error::ErrorKind::DisplayHelp => ConfigError::HelpRequested(e.render().to_string()),
        _ => {
            let error = e.render().to_string();
            let first = error.lines().next().unwrap_or_default();
            ConfigError::Usage(format!("{first}\n\n{}", DlmArgs::command().render_help()))
        }
    })?;
    Ok((args, split))
}

/// Fills in from the `DLM_*` variables of `env` what the command line left open (the command
/// line wins); returns the test-only `DLM_TEST_PAGER_PANIC` fault. An unknown `DLM_*` name is
/// an error, so a typo does not pass unnoticed.
fn apply_env<I>(args: &mut DlmArgs, env: I) -> Result<Option<u64>, ConfigError>
where
    I: IntoIterator<Item = (String, String)>,
{
    let mut pager_panic_at = None;
    for (name, value) in env {
        let Some(known) = ENV_VARS.iter().find(|k| **k == name) else {
            if name.starts_with("DLM_") {
                return Err(ConfigError::UnknownEnv { name });
            }
            continue;
        };
        let size =
            || parse_size(&value).map_err(|source| ConfigError::BadSize { name: known, value: value.clone(), source });
        let flag = || match value.as_str() {
            "1" => Ok(true),
            "0" | "" => Ok(false),
            _ => Err(ConfigError::BadFlag { name: known, value: value.clone() }),
        };
        match *known {
            "DLM_POOL" => args.pool = args.pool.take().or(Some(value.clone())),
            "DLM_POOL_MEM" => args.pool_mem = Some(size()?),
            "DLM_JOB" => args.job = Some(value.clone()),
            // `dlm submit`'s WAN manager: a user's shell exports it, the runtime has no use for it.
            "DLM_WAN" => {}
            "DLM_MEMFILE" => args.memfile = args.memfile.take().or(Some(PathBuf::from(&value))),
            "DLM_LOCAL_MEM" => args.local_mem = args.local_mem.or(Some(size()?)),
            "DLM_SERVER_MEM" => args.server_mem = args.server_mem.or(Some(size()?)),
            "DLM_PAGE_SIZE" => args.page_size = args.page_size.or(Some(size()?)),
            "DLM_STATS" => args.stats |= flag()?,
            "DLM_MOVE_PAGES" => args.copy_pages |= !flag()?,
            "DLM_STATS_JSON" => args.stats_json = args.stats_json.take().or(Some(PathBuf::from(&value))),
            "DLM_STATS_LIVE" => args.stats_live = args.stats_live.take().or(Some(PathBuf::from(&value))),
            "DLM_SPAWN_TIMEOUT" => {
                let seconds =
                    value.parse().map_err(|_| ConfigError::BadSeconds { name: known, value: value.clone() })?;
                args.spawn_timeout = args.spawn_timeout.or(Some(seconds));
            }
            "DLM_TEST_PAGER_PANIC" => {
                let fault = value.parse().map_err(|_| ConfigError::BadCount { name: known, value: value.clone() })?;
                pager_panic_at = Some(fault);
            }
            _ => unreachable!("every name in ENV_VARS is handled"),
        }
    }
    Ok(pager_panic_at)
}

impl DlmArgs {
    /// The configuration these options give: the memfile read, the page size chosen and checked
    /// against the budget and the memfile.
    fn into_config(self, pager_panic_at: Option<u64>) -> Result<Config, ConfigError> {
        let system = crate::sys::system_page_size();
        let memfile = self.memfile.map(|p| Memfile::load(&p)).transpose()?;
        let page_size = self.page_size.unwrap_or_else(|| default_page_size(self.local_mem, memfile.as_ref(), system));
        if page_size == 0 || !page_size.is_multiple_of(system as u64) || page_size > 1 << 30 {
            return Err(ConfigError::PageSize { page_size, system });
        }
        let page_size = page_size as usize;
        if let Some(budget) = self.local_mem {
            if budget < 2 * page_size as u64 {
                return Err(ConfigError::BudgetTooSmall { budget, page_size });
            }
        }
        if let Some(mf) = &memfile {
            mf.check_page_size(page_size)?;
        }
        if self.pool.is_some() && memfile.is_some() {
            return Err(ConfigError::PoolAndMemfile);
        }
        let pool =
            self.pool.map(|manager| PoolRequest { manager, total: self.pool_mem.or(self.server_mem), job: self.job });
        Ok(Config {
            pool,
            local_budget: self.local_mem,
            server_mem: self.server_mem,
            page_size,
            memfile,
            stats: self.stats,
            stats_json: self.stats_json,
            stats_live: self.stats_live,
            spawn_timeout: self.spawn_timeout.unwrap_or(DEFAULT_SPAWN_TIMEOUT),
            move_pages: !self.copy_pages,
            pager_panic_at,
        })
    }
}

/// The largest default page that the budget holds [`MIN_PAGES_IN_BUDGET`] times and every
/// memfile server can hold; huge pages only where the kernel gives them.
fn default_page_size(budget: Option<u64>, memfile: Option<&Memfile>, system: usize) -> u64 {
    let huge = crate::sys::huge_pages_available();
    let fits = |page: usize| {
        budget.is_none_or(|b| b >= MIN_PAGES_IN_BUDGET * page as u64)
            && memfile.is_none_or(|mf| mf.check_page_size(page).is_ok())
            && (huge || page != crate::sys::HUGE_PAGE)
    };
    DEFAULT_PAGE_SIZES.into_iter().find(|&page| fits(page)).unwrap_or(system) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn env(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn classic_form_after_double_dash_is_split_off() {
        let argv = args(&["prog", "in.dat", "--", "-l", "256M", "-p", "64K", "--stats"]);
        let (config, keep) = from_env_and_args(env(&[]), &argv).unwrap();
        assert_eq!(keep, 2);
        assert_eq!(config.local_budget, Some(256 << 20));
        assert_eq!(config.page_size, 64 << 10);
        assert!(config.stats);
    }

    #[test]
    fn the_classic_pool_options_name_the_manager_and_the_total() {
        let argv = args(&["prog", "--", "-s", "node01", "-m", "8G", "-l", "1G"]);
        let (config, _) = from_env_and_args(env(&[]), &argv).unwrap();
        assert_eq!(config.pool, Some(PoolRequest { manager: "node01".into(), total: Some(8 << 30), job: None }));
        let (config, _) =
            from_env_and_args(env(&[("DLM_POOL", "n2:7451"), ("DLM_POOL_MEM", "2G")]), &args(&["p"])).unwrap();
        assert_eq!(config.pool, Some(PoolRequest { manager: "n2:7451".into(), total: Some(2 << 30), job: None }));
        let err = from_env_and_args(env(&[("DLM_POOL", "n2")]), &args(&["p", "--", "/nonexistent/memfile"]));
        assert!(err.is_err());
    }

    #[test]
    fn arguments_win_over_environment() {
        let argv = args(&["prog", "--", "-l", "1G"]);
        let vars = env(&[("DLM_LOCAL_MEM", "2G"), ("DLM_SERVER_MEM", "3G"), ("DLM_STATS", "1"), ("HOME", "/")]);
        let (config, _) = from_env_and_args(vars, &argv).unwrap();
        assert_eq!(config.local_budget, Some(1 << 30));
        assert_eq!(config.server_mem, Some(3 << 30));
        assert!(config.stats);
    }

    #[test]
    fn live_statistics_go_to_the_path_given_and_the_argument_wins() {
        let (config, _) = from_env_and_args(env(&[("DLM_STATS_LIVE", "/tmp/a.jsonl")]), &args(&["p"])).unwrap();
        assert_eq!(config.stats_live, Some(PathBuf::from("/tmp/a.jsonl")));
        let argv = args(&["p", "--", "--stats-live", "/tmp/b.jsonl"]);
        let (config, _) = from_env_and_args(env(&[("DLM_STATS_LIVE", "/tmp/a.jsonl")]), &argv).unwrap();
        assert_eq!(config.stats_live, Some(PathBuf::from("/tmp/b.jsonl")));
        let (config, _) = from_env_and_args(env(&[]), &args(&["p"])).unwrap();
        assert_eq!(config.stats_live, None);
    }

    #[test]
    fn rejects_bad_options_with_usage() {
        let err = from_env_and_args(env(&[]), &args(&["prog", "--", "--frobnicate"])).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("--frobnicate") && text.contains("Usage"), "{text}");
        let err = from_env_and_args(env(&[("DLM_LOCALMEM", "1G")]), &args(&["prog"])).unwrap_err();
        assert!(err.to_string().contains("unknown environment variable DLM_LOCALMEM"));
        let err = from_env_and_args(env(&[("DLM_PAGE_SIZE", "1000")]), &args(&["prog"])).unwrap_err();
        assert!(err.to_string().contains("multiple of the system page size"));
        let err = from_env_and_args(env(&[("DLM_LOCAL_MEM", "12X")]), &args(&["prog"])).unwrap_err();
        assert!(err.to_string().starts_with("DLM_LOCAL_MEM=12X: invalid size"));
        let err = from_env_and_args(env(&[("DLM_MOVE_PAGES", "yes")]), &args(&["prog"])).unwrap_err();
        assert_eq!(err.to_string(), "DLM_MOVE_PAGES=yes: expected 0 or 1");
        let err = from_env_and_args(env(&[("DLM_LOCAL_MEM", "4K")]), &args(&["prog"])).unwrap_err();
        assert!(matches!(err, ConfigError::BudgetTooSmall { .. }));
    }
}
