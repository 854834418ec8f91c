//! The placement policies, as pure functions over the reachable clusters' recorded state
//! ([`ClusterView`]): which cluster and node a program goes to, and whether it runs in the
//! node's local memory or through the cluster's pool.
//!
//! **Local-first** (the seed system's "local-memory-ratio first") tries two rules in turn:
//!
//! - *A, local memory.* The candidates are the nodes whose free memory (MemFree, within DLM's
//!   cap there, less the jobs running on it) exceeds the request. When no node of any cluster
//!   has that much, the candidates are the nodes whose MemFree + Inactive exceeds it. Of the
//!   candidates the best fit wins: the least memory that still exceeds the request, then the
//!   lower load, then the earlier cluster and node. The program gets all its memory locally.
//! - *B, through the pool.* In each cluster the node with the most MemFree + Inactive (ties:
//!   the lower load, then the earlier node) may host the program if it has at least
//!   [`MIN_LOCAL_BYTES`]. Its local budget is that memory, but at most the request less
//!   [`BUDGET_GRAIN`] (so a pool job always has something in the pool), rounded down to whole
//!   [`BUDGET_GRAIN`]s; the rest must fit in the cluster's pool. Of the clusters where it fits,
//!   the best fit wins: the least pool memory available, then the fewer pool clients, then the
//!   earlier cluster.
//!
//! A node is busy when its one-minute load per CPU is at least [`BUSY_LOAD_PER_CPU`]. Both
//! rules first consider only nodes that are not busy; only when neither rule can place the
//! program on any of them are they tried again with busy nodes included, so a program is never
//! kept waiting for load alone.
//!
//! **Equalize** ("client-count equalization") spreads programs over the clusters: it groups
//! the clusters by their number of pool clients and applies local-first to each group alone,
//! the fewest clients first; the first group that can take the program wins.
//!
//! Under both, a program that fits nowhere now waits; one that asks for more than any cluster
//! could ever give (its largest node's cap plus its pool's cap) is refused, naming the largest
//! request that could run. Clusters come in HOSTCONF order, the last tie-break everywhere.

use crate::proto::{Mode, Through};
use std::cmp::Ordering;

/// A node is busy when its one-minute load average per CPU is at least this.
pub const BUSY_LOAD_PER_CPU: f64 = 0.5;

/// A pool job's node must have at least this much memory for its local budget.
pub const MIN_LOCAL_BYTES: u64 = 8 << 20;

/// Local budgets are whole multiples of this (rounded down).
pub const BUDGET_GRAIN: u64 = 1 << 20;

/// One node of a cluster as placement sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeView {
    pub host: String,
    /// The most DLM may use on the node.
    pub cap_bytes: u64,
    /// What a new job could have judged by MemFree (within the cap, less running jobs).
    pub free_bytes: u64,
    /// The same judged by MemFree + Inactive (at least `free_bytes`).
    pub available_bytes: u64,
    pub load1: f64,
    pub cpus: u32,
}

impl NodeView {
    /// Whether the node's load per CPU is at least [`BUSY_LOAD_PER_CPU`] (a node reporting 0
    /// CPUs counts as one, so it is judged rather than divided by zero).
    pub fn busy(&self) -> bool {
        self.load1 / f64::from(self.cpus.max(1)) >= BUSY_LOAD_PER_CPU
    }
}

/// One reachable cluster as placement sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterView {
    pub name: String,
    pub nodes: Vec<NodeView>,
    /// What the pool could give a new client now.
    pub pool_available_bytes: u64,
    /// The pool's caps over all its memory servers.
    pub pool_cap_bytes: u64,
    /// The pool's clients (programs holding memory there).
    pub clients: u32,
}

impl ClusterView {
    /// The largest request the cluster could ever hold: its largest node's cap plus its pool's
    /// cap (0 without nodes, since nothing can run there).
    pub fn max_job_bytes(&self) -> u64 {
        let largest_node = self.nodes.iter().map(|n| n.cap_bytes).max();
        largest_node.map_or(0, |cap| cap.saturating_add(self.pool_cap_bytes))
    }
}

/// Where a program goes: indices into the clusters given to [`decide`] and into that
/// cluster's nodes, and how its memory splits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chosen {
    pub cluster: usize,
    pub node: usize,
    pub through: Through,
    pub local_bytes: u64,
    pub pool_bytes: u64,
}

/// What [`decide`] concluded for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Place(Chosen),
    /// Nothing can take it now; it may fit once memory is freed.
    Wait,
    /// No cluster could ever hold it; `largest_bytes` is the largest request that could run.
    Never {
        largest_bytes: u64,
    },
}

/// Chooses a cluster and node for a program needing `memory_bytes` in all, under `mode`.
/// `clusters` are the reachable clusters in HOSTCONF order.
pub fn decide(clusters: &[ClusterView], memory_bytes: u64, mode: Mode) -> Decision {
    // Without a reachable cluster nothing is known about the largest job: wait for one.
    if clusters.is_empty() {
        return Decision::Wait;
    }
    let largest_bytes = largest_job_bytes(clusters);
    if memory_bytes > largest_bytes {
        return Decision::Never { largest_bytes };
    }
    let chosen = match mode {
        Mode::LocalFirst => local_first(clusters, &(0..clusters.len()).collect::<Vec<_>>(), memory_bytes),
        Mode::Equalize => by_client_count(clusters).iter().find_map(|group| local_first(clusters, group, memory_bytes)),
    };
    chosen.map_or(Decision::Wait, Decision::Place)
}

/// A node the user chose (the portal's Interactive mode): the job runs there in local memory
/// when the node has the room (MemFree, else MemFree + Inactive), else there through its
/// cluster's pool (rule B on that node), else it waits; busy or not, it is the user's choice.
/// `Never` when the node's cap and the pool's could never hold it.
pub fn decide_on(clusters: &[ClusterView], cluster: usize, node: usize, memory_bytes: u64) -> Decision {
    let view = &clusters[cluster].nodes[node];
    let largest_bytes = view.cap_bytes + clusters[cluster].pool_cap_bytes;
    if memory_bytes > largest_bytes {
        return Decision::Never { largest_bytes };
    }
    let fits = |room: u64| room > memory_bytes;
    if fits(view.free_bytes) || fits(view.available_bytes) {
        let through = Through::LocalMemory;
        return Decision::Place(Chosen { cluster, node, through, local_bytes: memory_bytes, pool_bytes: 0 });
    }
    let local_bytes = local_budget(view.available_bytes, memory_bytes);
    let pool_bytes = memory_bytes - local_bytes;
    if view.available_bytes >= MIN_LOCAL_BYTES && clusters[cluster].pool_available_bytes >= pool_bytes {
        return Decision::Place(Chosen { cluster, node, through: Through::Pool, local_bytes, pool_bytes });
    }
    Decision::Wait
}

/// The largest request any of `clusters` could ever hold (0 for none).
pub fn largest_job_bytes(clusters: &[ClusterView]) -> u64 {
    clusters.iter().map(ClusterView::max_job_bytes).max().unwrap_or(0)
}

/// Which nodes a rule may choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Eligible {
    NotBusy,
    Any,
}

impl Eligible {
    fn admits(self, node: &NodeView) -> bool {
        self == Eligible::Any || !node.busy()
    }
}

/// Which measure of a node's memory rule A judges by.
#[derive(Debug, Clone, Copy)]
enum Judge {
    MemFree,
    MemFreeInactive,
}

impl Judge {
    fn room(self, node: &NodeView) -> u64 {
        match self {
            Judge::MemFree => node.free_bytes,
            Judge::MemFreeInactive => node.available_bytes,
        }
    }
}

/// A node with its place in the clusters given.
#[derive(Debug, Clone, Copy)]
struct Located<'a> {
    cluster: usize,
    node: usize,
    view: &'a NodeView,
}

/// Local-first over the clusters at indices `members`: A then B on nodes that are not busy,
/// then both again on every node.
fn local_first(clusters: &[ClusterView], members: &[usize], memory_bytes: u64) -> Option<Chosen> {
    [Eligible::NotBusy, Eligible::Any].into_iter().find_map(|eligible| {
        in_local_memory(clusters, members, memory_bytes, eligible)
            .or_else(|| through_pool(clusters, members, memory_bytes, eligible))
    })
}

/// The clusters' indices grouped by client count, the fewest clients first (each group in
/// HOSTCONF order).
fn by_client_count(clusters: &[ClusterView]) -> Vec<Vec<usize>> {
    let mut counts: Vec<u32> = clusters.iter().map(|c| c.clients).collect();
    counts.sort_unstable();
    counts.dedup();
    counts.into_iter().map(|count| (0..clusters.len()).filter(|&i| clusters[i].clients == count).collect()).collect()
}

/// The eligible nodes of the members, in cluster then node order.
fn eligible_nodes<'a>(
    clusters: &'a [ClusterView],
    members: &'a [usize],
    eligible: Eligible,
) -> impl Iterator<Item = Located<'a>> + 'a {
    members.iter().flat_map(move |&c| eligible_in(clusters, c, eligible))
}

/// The eligible nodes of cluster `c`, in order.
fn eligible_in(clusters: &[ClusterView], c: usize, eligible: Eligible) -> impl Iterator<Item = Located<'_>> {
    clusters[c]
        .nodes
        .iter()
        .enumerate()
        .filter(move |(_, node)| eligible.admits(node))
        .map(move |(node, view)| Located { cluster: c, node, view })
}

/// Rule A: the best-fitting node by MemFree, else by MemFree + Inactive.
fn in_local_memory(
    clusters: &[ClusterView],
    members: &[usize],
    memory_bytes: u64,
    eligible: Eligible,
) -> Option<Chosen> {
    [Judge::MemFree, Judge::MemFreeInactive].into_iter().find_map(|judge| {
        let Located { cluster, node, .. } = eligible_nodes(clusters, members, eligible)
            .filter(|at| judge.room(at.view) > memory_bytes)
            .min_by(|a, b| best_fit(judge, a, b))?;
        Some(Chosen { cluster, node, through: Through::LocalMemory, local_bytes: memory_bytes, pool_bytes: 0 })
    })
}

/// Rule A's order: the least room, then the lower load, then the earlier cluster and node.
fn best_fit(judge: Judge, a: &Located, b: &Located) -> Ordering {
    judge
        .room(a.view)
        .cmp(&judge.room(b.view))
        .then(a.view.load1.total_cmp(&b.view.load1))
        .then((a.cluster, a.node).cmp(&(b.cluster, b.node)))
}

/// Rule B: the best-fitting pool among the members where the program fits.
fn through_pool(clusters: &[ClusterView], members: &[usize], memory_bytes: u64, eligible: Eligible) -> Option<Chosen> {
    members
        .iter()
        .filter_map(|&c| pool_offer(clusters, c, memory_bytes, eligible))
        .min_by(|a, b| best_pool(clusters, a, b))
}

/// Rule B's cluster order: the least pool available, then the fewer clients, then the earlier
/// cluster.
fn best_pool(clusters: &[ClusterView], a: &Chosen, b: &Chosen) -> Ordering {
    let (ca, cb) = (&clusters[a.cluster], &clusters[b.cluster]);
    ca.pool_available_bytes
        .cmp(&cb.pool_available_bytes)
        .then(ca.clients.cmp(&cb.clients))
        .then(a.cluster.cmp(&b.cluster))
}

/// What cluster `c` could give through its pool: its roomiest eligible node with the local
/// budget that node allows, if the pool holds the rest.
fn pool_offer(clusters: &[ClusterView], c: usize, memory_bytes: u64, eligible: Eligible) -> Option<Chosen> {
    let Located { node, view, .. } = eligible_in(clusters, c, eligible).min_by(roomiest)?;
    if view.available_bytes < MIN_LOCAL_BYTES {
        return None;
    }
    let local_bytes = local_budget(view.available_bytes, memory_bytes);
    let pool_bytes = memory_bytes - local_bytes;
    (clusters[c].pool_available_bytes >= pool_bytes).then_some(Chosen {
        cluster: c,
        node,
        through: Through::Pool,
        local_bytes,
        pool_bytes,
    })
}

/// Rule B's node order: the most MemFree + Inactive, then the lower load, then the earlier node.
fn roomiest(a: &Located, b: &Located) -> Ordering {
    b.view
        .available_bytes
        .cmp(&a.view.available_bytes)
        .then(a.view.load1.total_cmp(&b.view.load1))
        .then(a.node.cmp(&b.node))
}

/// A pool job's local budget on a node with `available_bytes`, in whole grains: at most the
/// request less one grain, so that a job sent through the pool always has memory there.
fn local_budget(available_bytes: u64, memory_bytes: u64) -> u64 {
    let budget = available_bytes.min(memory_bytes.saturating_sub(BUDGET_GRAIN));
    budget / BUDGET_GRAIN * BUDGET_GRAIN
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chosen_node_runs_the_job_locally_through_its_pool_or_waits() {
        let node = |free, available, load1| NodeView {
            host: "n1".into(),
            cap_bytes: 8 * G,
            free_bytes: free,
            available_bytes: available,
            load1,
            cpus: 2,
        };
        let cluster = |n: NodeView, pool| ClusterView {
            name: "c".into(),
            nodes: vec![n],
            pool_available_bytes: pool,
            pool_cap_bytes: 16 * G,
            clients: 0,
        };
        let local = decide_on(&[cluster(node(4 * G, 4 * G, 9.0), 0)], 0, 0, 3 * G);
        assert!(
            matches!(local, Decision::Place(Chosen { through: Through::LocalMemory, .. })),
            "busy or not: {local:?}"
        );
        let pool = decide_on(&[cluster(node(G, 2 * G, 0.0), 8 * G)], 0, 0, 3 * G);
        let expected = Chosen { cluster: 0, node: 0, through: Through::Pool, local_bytes: 2 * G, pool_bytes: G };
        assert_eq!(pool, Decision::Place(expected));
        assert_eq!(decide_on(&[cluster(node(G, G, 0.0), 0)], 0, 0, 3 * G), Decision::Wait);
        assert_eq!(decide_on(&[cluster(node(G, G, 0.0), 0)], 0, 0, 30 * G), Decision::Never { largest_bytes: 24 * G });
    }

    const G: u64 = 1 << 30;
    const M: u64 = 1 << 20;

    /// An idle node (8 CPUs, load 0, a 64 GiB cap) with this MemFree and MemFree + Inactive.
    fn node(host: &str, free_bytes: u64, available_bytes: u64) -> NodeView {
        NodeView { host: host.into(), cap_bytes: 64 * G, free_bytes, available_bytes, load1: 0.0, cpus: 8 }
    }

    /// `node` with a one-minute load of `load1` (busy from 4.0 on its 8 CPUs).
    fn loaded(node: NodeView, load1: f64) -> NodeView {
        NodeView { load1, ..node }
    }

    /// A cluster whose pool has `pool_available_bytes` left of a 256 GiB cap and no clients.
    fn cluster(name: &str, nodes: Vec<NodeView>, pool_available_bytes: u64) -> ClusterView {
        ClusterView { name: name.into(), nodes, pool_available_bytes, pool_cap_bytes: 256 * G, clients: 0 }
    }

    fn with_clients(cluster: ClusterView, clients: u32) -> ClusterView {
        ClusterView { clients, ..cluster }
    }

    fn local(cluster: usize, node: usize, bytes: u64) -> Decision {
        Decision::Place(Chosen { cluster, node, through: Through::LocalMemory, local_bytes: bytes, pool_bytes: 0 })
    }

    fn pool(cluster: usize, node: usize, local_bytes: u64, pool_bytes: u64) -> Decision {
        Decision::Place(Chosen { cluster, node, through: Through::Pool, local_bytes, pool_bytes })
    }

    /// What the chosen job takes once it runs: its local budget on the node, its pool bytes,
    /// and (the WAN manager counting every job it placed there) one client of the cluster.
    fn charge(clusters: &mut [ClusterView], chosen: Chosen) {
        let cluster = &mut clusters[chosen.cluster];
        let node = &mut cluster.nodes[chosen.node];
        node.free_bytes = node.free_bytes.saturating_sub(chosen.local_bytes);
        node.available_bytes = node.available_bytes.saturating_sub(chosen.local_bytes);
        cluster.pool_available_bytes -= chosen.pool_bytes;
        cluster.clients += 1;
    }

    /// Decides `jobs` requests of `bytes` one after another, charging each placement, and
    /// returns each job's decision.
    fn run(clusters: &mut [ClusterView], jobs: usize, bytes: u64, mode: Mode) -> Vec<Decision> {
        (0..jobs)
            .map(|_| {
                let decision = decide(clusters, bytes, mode);
                if let Decision::Place(chosen) = decision {
                    charge(clusters, chosen);
                }
                decision
            })
            .collect()
    }

    #[test]
    fn busy_is_load_per_cpu_and_zero_cpus_count_as_one() {
        assert!(loaded(node("a", G, G), 4.0).busy());
        assert!(!loaded(node("a", G, G), 3.9).busy());
        let no_cpus = NodeView { cpus: 0, ..node("a", G, G) };
        assert!(!loaded(no_cpus.clone(), 0.4).busy());
        assert!(loaded(no_cpus, 0.5).busy());
    }

    #[test]
    fn local_memory_picks_the_best_fitting_free_node() {
        // 5 GiB: the 6 GiB node fits it most tightly; the 4 GiB one cannot hold it.
        let clusters = [
            cluster("osaka", vec![node("o1", 10 * G, 10 * G), node("o2", 4 * G, 4 * G)], 0),
            cluster("kyoto", vec![node("k1", 6 * G, 6 * G)], 0),
        ];
        assert_eq!(decide(&clusters, 5 * G, Mode::LocalFirst), local(1, 0, 5 * G));
        // Exactly the request is not enough: MemFree must exceed it.
        assert_eq!(decide(&clusters, 6 * G, Mode::LocalFirst), local(0, 0, 6 * G));
    }

    #[test]
    fn equal_fits_go_to_the_lower_load_then_the_earlier_node() {
        let clusters = [
            cluster("osaka", vec![loaded(node("o1", 6 * G, 6 * G), 2.0), node("o2", 6 * G, 6 * G)], 0),
            cluster("kyoto", vec![node("k1", 6 * G, 6 * G)], 0),
        ];
        assert_eq!(decide(&clusters, 5 * G, Mode::LocalFirst), local(0, 1, 5 * G));
    }

    #[test]
    fn memfree_fails_everywhere_memfree_plus_inactive_succeeds() {
        // No node has 5 GiB free; by MemFree + Inactive, 8 GiB is the best fit above it.
        let clusters = [
            cluster("osaka", vec![node("o1", 2 * G, 12 * G)], 0),
            cluster("kyoto", vec![node("k1", 3 * G, 8 * G), node("k2", 4 * G, 4 * G)], 0),
        ];
        assert_eq!(decide(&clusters, 5 * G, Mode::LocalFirst), local(1, 0, 5 * G));
    }

    #[test]
    fn memfree_wins_over_a_tighter_fit_by_memfree_plus_inactive() {
        // k1 fits more tightly counting Inactive, but o1 has the memory free.
        let clusters = [
            cluster("osaka", vec![node("o1", 10 * G, 10 * G)], 0),
            cluster("kyoto", vec![node("k1", 2 * G, 6 * G)], 0),
        ];
        assert_eq!(decide(&clusters, 5 * G, Mode::LocalFirst), local(0, 0, 5 * G));
    }

    #[test]
    fn a_busy_node_with_room_is_skipped_while_a_quiet_one_fits() {
        // o1 would fit best, but its load is 6 on 8 CPUs.
        let clusters = [
            cluster("osaka", vec![loaded(node("o1", 6 * G, 6 * G), 6.0)], 0),
            cluster("kyoto", vec![node("k1", 10 * G, 10 * G)], 0),
        ];
        assert_eq!(decide(&clusters, 5 * G, Mode::LocalFirst), local(1, 0, 5 * G));
    }

    #[test]
    fn a_quiet_node_through_the_pool_beats_a_busy_one_in_local_memory() {
        let clusters = [
            cluster("osaka", vec![loaded(node("o1", 10 * G, 10 * G), 6.0)], 0),
            cluster("kyoto", vec![node("k1", 2 * G, 2 * G)], 8 * G),
        ];
        assert_eq!(decide(&clusters, 5 * G, Mode::LocalFirst), pool(1, 0, 2 * G, 3 * G));
    }

    #[test]
    fn busy_nodes_are_used_when_nothing_else_fits() {
        // k1 is quiet but too small and kyoto has no pool: o1, busy, takes it rather than wait.
        let clusters = [
            cluster("osaka", vec![loaded(node("o1", 10 * G, 10 * G), 6.0)], 0),
            cluster("kyoto", vec![node("k1", 2 * G, 2 * G)], 0),
        ];
        assert_eq!(decide(&clusters, 5 * G, Mode::LocalFirst), local(0, 0, 5 * G));
    }

    #[test]
    fn pool_best_fit_is_the_least_pool_that_holds_the_rest() {
        // 12 GiB fits no node. osaka: 4 GiB local, 8 GiB in its 20 GiB pool; kyoto: k2 (the most
        // available) gives 5 GiB, 7 GiB in its 10 GiB pool; nara: 7 GiB do not fit its 6 GiB.
        // kyoto's pool is the least that holds the rest.
        let clusters = [
            cluster("osaka", vec![node("o1", G, 4 * G)], 20 * G),
            cluster("kyoto", vec![node("k1", 3 * G, 3 * G), node("k2", 2 * G, 5 * G)], 10 * G),
            cluster("nara", vec![node("n1", 5 * G, 5 * G)], 6 * G),
        ];
        assert_eq!(decide(&clusters, 12 * G, Mode::LocalFirst), pool(1, 1, 5 * G, 7 * G));
    }

    #[test]
    fn pool_ties_go_to_fewer_clients_then_the_earlier_cluster() {
        let clusters = [
            with_clients(cluster("osaka", vec![node("o1", 2 * G, 2 * G)], 10 * G), 3),
            with_clients(cluster("kyoto", vec![node("k1", 2 * G, 2 * G)], 10 * G), 1),
            with_clients(cluster("nara", vec![node("n1", 2 * G, 2 * G)], 10 * G), 1),
        ];
        assert_eq!(decide(&clusters, 5 * G, Mode::LocalFirst), pool(1, 0, 2 * G, 3 * G));
        let clusters = [
            cluster("osaka", vec![node("o1", 2 * G, 2 * G)], 10 * G),
            cluster("kyoto", vec![node("k1", 2 * G, 2 * G)], 10 * G),
        ];
        assert_eq!(decide(&clusters, 5 * G, Mode::LocalFirst), pool(0, 0, 2 * G, 3 * G));
    }

    #[test]
    fn a_node_below_min_local_bytes_cannot_host_a_pool_job() {
        let clusters = [cluster("osaka", vec![node("o1", 0, MIN_LOCAL_BYTES - 1)], 64 * G)];
        assert_eq!(decide(&clusters, G, Mode::LocalFirst), Decision::Wait);
        let clusters = [cluster("osaka", vec![node("o1", 0, MIN_LOCAL_BYTES)], 64 * G)];
        assert_eq!(decide(&clusters, G, Mode::LocalFirst), pool(0, 0, MIN_LOCAL_BYTES, G - MIN_LOCAL_BYTES));
    }

    #[test]
    fn waits_when_nothing_fits_now() {
        // 16 GiB could fit once osaka's memory is freed (64 GiB caps), but not now.
        let clusters = [
            cluster("osaka", vec![node("o1", 4 * G, 6 * G)], 8 * G),
            cluster("kyoto", vec![node("k1", 2 * G, 2 * G)], 0),
        ];
        assert_eq!(decide(&clusters, 16 * G, Mode::LocalFirst), Decision::Wait);
        assert_eq!(decide(&clusters, 16 * G, Mode::Equalize), Decision::Wait);
        assert_eq!(decide(&[], G, Mode::LocalFirst), Decision::Wait);
    }

    #[test]
    fn never_names_the_largest_job_any_cluster_could_hold() {
        // osaka: its largest node 32 GiB + its pool's 64 GiB cap = 96 GiB; kyoto: 128 GiB alone.
        let osaka = ClusterView {
            pool_cap_bytes: 64 * G,
            nodes: vec![
                NodeView { cap_bytes: 16 * G, ..node("o1", 0, 0) },
                NodeView { cap_bytes: 32 * G, ..node("o2", 0, 0) },
            ],
            ..cluster("osaka", vec![], 0)
        };
        let kyoto = ClusterView {
            pool_cap_bytes: 0,
            nodes: vec![NodeView { cap_bytes: 128 * G, ..node("k1", 0, 0) }],
            ..cluster("kyoto", vec![], 0)
        };
        let empty = ClusterView { pool_cap_bytes: 512 * G, ..cluster("nara", vec![], 0) };
        assert_eq!(osaka.max_job_bytes(), 96 * G);
        assert_eq!(empty.max_job_bytes(), 0);
        let clusters = [osaka, kyoto, empty];
        assert_eq!(largest_job_bytes(&clusters), 128 * G);
        let never = Decision::Never { largest_bytes: 128 * G };
        assert_eq!(decide(&clusters, 128 * G + 1, Mode::LocalFirst), never);
        assert_eq!(decide(&clusters, 128 * G + 1, Mode::Equalize), never);
        assert_eq!(decide(&clusters, 128 * G, Mode::LocalFirst), Decision::Wait);
    }

    #[test]
    fn local_budgets_are_whole_mib() {
        // 5 GiB + 123456 bytes available: the budget is 5 GiB, the pool holds the other 5.
        let clusters = [cluster("osaka", vec![node("o1", 0, 5 * G + 123_456)], 16 * G)];
        assert_eq!(decide(&clusters, 10 * G, Mode::LocalFirst), pool(0, 0, 5 * G, 5 * G));
        // All of the request is available but not above it: the budget is the request less a
        // MiB, rounded down (6 GiB - 1 MiB), the pool the 1.5 MiB left.
        let request = 6 * G + 512 * 1024;
        let clusters = [cluster("osaka", vec![node("o1", 0, request)], 16 * G)];
        assert_eq!(decide(&clusters, request, Mode::LocalFirst), pool(0, 0, 6 * G - M, M + 512 * 1024));
    }

    #[test]
    fn equalize_goes_to_the_fewest_clients() {
        // osaka fits best but has 2 clients; kyoto has none.
        let clusters = [
            with_clients(cluster("osaka", vec![node("o1", 6 * G, 6 * G)], 0), 2),
            with_clients(cluster("kyoto", vec![node("k1", 30 * G, 30 * G)], 0), 0),
            with_clients(cluster("nara", vec![node("n1", 8 * G, 8 * G)], 0), 1),
        ];
        assert_eq!(decide(&clusters, 5 * G, Mode::Equalize), local(1, 0, 5 * G));
    }

    #[test]
    fn equalize_with_equal_counts_is_local_first() {
        let clusters = [
            with_clients(cluster("osaka", vec![node("o1", 30 * G, 30 * G)], 0), 1),
            with_clients(cluster("kyoto", vec![node("k1", 2 * G, 2 * G)], 20 * G), 1),
            with_clients(cluster("nara", vec![node("n1", 6 * G, 6 * G)], 0), 1),
        ];
        for request in [5 * G, 40 * G] {
            assert_eq!(decide(&clusters, request, Mode::Equalize), decide(&clusters, request, Mode::LocalFirst));
        }
        assert_eq!(decide(&clusters, 5 * G, Mode::Equalize), local(2, 0, 5 * G));
    }

    #[test]
    fn equalize_passes_a_full_group_to_the_next() {
        // kyoto has the fewest clients but neither the memory nor a pool; of osaka and nara
        // (one client each), nara fits best.
        let clusters = [
            with_clients(cluster("osaka", vec![node("o1", 30 * G, 30 * G)], 0), 1),
            with_clients(cluster("kyoto", vec![node("k1", 2 * G, 2 * G)], 0), 0),
            with_clients(cluster("nara", vec![node("n1", 6 * G, 6 * G)], 0), 1),
        ];
        assert_eq!(decide(&clusters, 5 * G, Mode::Equalize), local(2, 0, 5 * G));
    }

    #[test]
    fn equalize_uses_busy_nodes_of_its_group_before_the_next_group() {
        // kyoto's only node is busy but the group {kyoto} can place it, so osaka is not asked.
        let clusters = [
            with_clients(cluster("osaka", vec![node("o1", 30 * G, 30 * G)], 0), 1),
            with_clients(cluster("kyoto", vec![loaded(node("k1", 8 * G, 8 * G), 6.0)], 0), 0),
        ];
        assert_eq!(decide(&clusters, 5 * G, Mode::Equalize), local(1, 0, 5 * G));
    }

    #[test]
    fn equalize_spreads_jobs_round_robin_until_a_cluster_is_full() {
        // 2 GiB jobs over 16, 5 and 12 GiB free. Each round of equal counts starts at the best
        // fit (kyoto, then nara, then osaka); after two jobs kyoto has 1 GiB and drops out.
        let mut clusters = [
            cluster("osaka", vec![node("o1", 16 * G, 16 * G)], 0),
            cluster("kyoto", vec![node("k1", 5 * G, 5 * G)], 0),
            cluster("nara", vec![node("n1", 12 * G, 12 * G)], 0),
        ];
        let placed: Vec<_> = run(&mut clusters, 8, 2 * G, Mode::Equalize)
            .into_iter()
            .map(|d| match d {
                Decision::Place(chosen) => chosen.cluster,
                other => panic!("not placed: {other:?}"),
            })
            .collect();
        assert_eq!(placed, [1, 2, 0, 1, 2, 0, 2, 0]);
        assert_eq!(clusters.map(|c| c.clients), [3, 2, 3]);
    }

    #[test]
    fn local_first_never_uses_a_busy_cluster_while_another_fits() {
        // osaka's node is busy with plenty of memory. 3 GiB jobs: nara's 6 GiB fits the first
        // best, kyoto's 10 GiB the next three; then kyoto's pool (2 GiB, the smaller) and
        // nara's hold one each; only then does osaka get the rest.
        let mut clusters = [
            cluster("osaka", vec![loaded(node("o1", 64 * G, 64 * G), 7.0)], 0),
            cluster("kyoto", vec![node("k1", 10 * G, 10 * G)], 2 * G),
            cluster("nara", vec![node("n1", 6 * G, 6 * G)], 8 * G),
        ];
        let mut decisions = Vec::new();
        for _ in 0..8 {
            let decision = decide(&clusters, 3 * G, Mode::LocalFirst);
            if let Decision::Place(chosen) = decision {
                if chosen.cluster == 0 {
                    assert_eq!(decide(&clusters[1..], 3 * G, Mode::LocalFirst), Decision::Wait, "{decisions:?}");
                }
                charge(&mut clusters, chosen);
            }
            decisions.push(decision);
        }
        assert_eq!(
            decisions,
            [
                local(2, 0, 3 * G),
                local(1, 0, 3 * G),
                local(1, 0, 3 * G),
                local(1, 0, 3 * G),
                pool(1, 0, G, 2 * G),
                pool(2, 0, 3 * G - M, M),
                local(0, 0, 3 * G),
                local(0, 0, 3 * G),
            ]
        );
    }
}
