/*!
DLM-WAN: places a program on the cluster and node that can give it the memory it asks for,
across clusters, each run by a DLM pool manager (its "LAN manager").

The WAN manager keeps every cluster's report (compute nodes' memory and load, the pool's
servers and clients), decides by one of two policies where each job goes, queues what cannot
go anywhere yet, and runs each job through its cluster's manager, which ships its files to the
chosen node, runs it there and keeps its streams and outputs until they are fetched here.
docs/WAN.md describes it, docs/API.md its API.

Modules:
- `proto`: the WAN manager's wire format (docs/API.md), shared by it and its clients.
- `hostconf`: the HOSTCONF file (each cluster's name and its pool manager) and its errors.
- `policy`: the placement policies, pure functions over the clusters' recorded state.
- `bundle`: a job's one tar archive (`job.json`, then its files) and its outputs archive.
- `state`: the WAN manager's records: clusters as last reported, jobs, the queue.
- `lan`: the WAN manager's calls to a cluster's manager.
- `api`: the WAN manager's HTTP server and its tasks (poller, scheduler, followers).
- `client`: a blocking client of the API, for `dlm submit`, `dlm jobs` and the tests.
*/

pub mod api;
pub mod bundle;
pub mod client;
pub mod hostconf;
pub mod lan;
pub mod policy;
pub mod proto;
pub mod state;
