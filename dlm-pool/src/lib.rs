/*!
The control plane of a DLM memory pool: resident memory servers that an administrator starts in
advance on the hosts of a POOLCONF, and a manager that hands programs a share of them.

A program (a client) asks the manager for bytes; the manager chooses servers by the classic
rule (least weighted client count first) and gives the client a lease that its keep-alives
renew. Servers register with the manager, report their host's memory and the clients they hold,
and learn from each reply which clients are still valid. The data path (pages between a client
and its servers, over MPI) does not go through the manager.

Modules:
- `conf`: the POOLCONF file (`HOST SIZE` lines, the memfile's grammar) and its errors.
- `proto`: the API's JSON bodies and ids, shared by both ends.
- `assign`: the assignment rule and the load computation, pure functions over a snapshot.
- `state`: the manager's accounting: servers (up, draining, down), clients and leases,
  smoothed host memory, drains, the rebuild after a restart; every method takes the time.
- `identity`: who calls: peer credentials on the Unix socket, MUNGE over TCP.
- `api`: the HTTP server (axum) on both listeners, its routes and errors, and the monitor.
- `nodes`: the cluster's compute nodes (POOLCONF `compute` lines) for DLM-WAN: their memory
  and load, sampled on demand, less what the manager's jobs there reserve.
- `jobs`: the jobs the manager runs on its compute nodes for DLM-WAN, and what they reserve.
- `runner`: the steps that run one job on its node (unpack, build, run, status, outputs).
- `remote`: a command line on another host through Open MPI's remote shell (ssh).
- `client`: a blocking client of the API (used by `dlm pool`, the tests, later the servers
  and the runtime), with the MUNGE credential it sends over TCP.

Only `conf`, `proto` and `client` are built by default: they need no async runtime, so the
runtime, linked into every DLM program, depends on them alone. The manager's modules (`api`,
`state`, `assign`, `identity`: axum, tokio) need the feature `manager`, which `dlm-cli` enables.

`docs/POOL.md` describes the API, the POOLCONF and the identity and lease rules.
*/

#[cfg(feature = "manager")]
pub mod api;
#[cfg(feature = "manager")]
pub mod assign;
pub mod client;
pub mod conf;
#[cfg(feature = "manager")]
pub mod identity;
#[cfg(feature = "manager")]
pub mod jobs;
#[cfg(feature = "manager")]
pub mod nodes;
pub mod proto;
#[cfg(feature = "manager")]
pub mod remote;
#[cfg(feature = "manager")]
pub mod runner;
#[cfg(feature = "manager")]
pub mod state;
