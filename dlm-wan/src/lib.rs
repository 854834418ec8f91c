/*!
DLM-WAN: places a program on the cluster and node that can give it the memory it asks for.

Modules:
- `proto`: the WAN manager's wire format (docs/API.md).
- `policy`: the placement policies, pure functions over the clusters' recorded state.
- `hostconf`: the HOSTCONF file (each cluster's name and its pool manager) and its errors.
*/

pub mod hostconf;
pub mod policy;
pub mod proto;
