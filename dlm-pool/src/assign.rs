//! The assignment rule, as pure functions over a recorded pool state ([`Snapshot`]).
//!
//! A server's **load** is its weighted client count: the sum over its clients of the client's
//! bytes there divided by the client's bytes on all servers, so a client spread evenly over four
//! servers counts a quarter on each. A new client goes to the least-loaded `up` server that has
//! room (ties: the most available bytes, then the lowest id); when that server has not room for
//! all of it, the rest goes to the next one in the same order, and so on. Draining and down
//! servers get nothing. A request the pool cannot hold fails naming the requested and the
//! available bytes. No server is ever granted more than its available bytes, so never more than
//! its cap over all clients.

use crate::proto::{ClientId, Grant, ServerId, ServerState};
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// The pool as assignment sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub servers: Vec<ServerView>,
    /// Every client's bytes on every server (one entry per client and server).
    pub holdings: Vec<Holding>,
}

/// One server as assignment sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerView {
    pub id: ServerId,
    pub state: ServerState,
    pub cap_bytes: u64,
    /// What the host can still give (smoothed free memory less granted bytes not yet written);
    /// `None` before the server's first report, when only the cap limits it.
    pub host_room_bytes: Option<u64>,
}

/// Bytes granted to one client on one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holding {
    pub client: ClientId,
    pub server: ServerId,
    pub bytes: u64,
}

/// Why a request got no assignment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssignError {
    #[error("the pool cannot hold {requested} bytes: {available} bytes are available on {servers_up} servers up")]
    Insufficient { requested: u64, available: u64, servers_up: usize },
}

/// Bytes granted on `server` over all clients.
pub fn used_bytes(snapshot: &Snapshot, server: ServerId) -> u64 {
    snapshot.holdings.iter().filter(|h| h.server == server).map(|h| h.bytes).sum()
}

/// What a new client could get on `server`: nothing unless it is up; else the cap's rest, or
/// the host's room if smaller.
pub fn available_bytes(snapshot: &Snapshot, server: &ServerView) -> u64 {
    if server.state != ServerState::Up {
        return 0;
    }
    let cap_room = server.cap_bytes.saturating_sub(used_bytes(snapshot, server.id));
    server.host_room_bytes.map_or(cap_room, |host| host.min(cap_room))
}

/// Every server's weighted client count (servers without clients are absent: load 0).
pub fn loads(snapshot: &Snapshot) -> BTreeMap<ServerId, f64> {
    let mut totals: BTreeMap<&ClientId, u64> = BTreeMap::new();
    for h in &snapshot.holdings {
        *totals.entry(&h.client).or_default() += h.bytes;
    }
    let mut loads = BTreeMap::new();
    for h in snapshot.holdings.iter().filter(|h| h.bytes > 0) {
        *loads.entry(h.server).or_default() += h.bytes as f64 / totals[&h.client] as f64;
    }
    loads
}

/// Chooses servers for a new client asking for `bytes`, in shares that are whole multiples of
/// `page_bytes` (the request is rounded up to a page, each server's room down to a page).
pub fn assign(snapshot: &Snapshot, bytes: u64, page_bytes: u64) -> Result<Vec<Grant>, AssignError> {
    let page = page_bytes.max(1);
    let requested = bytes.div_ceil(page).saturating_mul(page);
    let candidates = ranked(snapshot, page);
    let available: u64 = candidates.iter().map(|c| c.room).sum();
    if available < requested {
        let servers_up = snapshot.servers.iter().filter(|s| s.state == ServerState::Up).count();
        return Err(AssignError::Insufficient { requested, available, servers_up });
    }
    let mut grants = Vec::new();
    let mut rest = requested;
    for candidate in candidates {
        if rest == 0 {
            break;
        }
        let take = rest.min(candidate.room);
        grants.push(Grant { server: candidate.id, bytes: take });
        rest -= take;
    }
    Ok(grants)
}

/// An up server with room, with what ranks it.
struct Candidate {
    id: ServerId,
    load: f64,
    /// Available bytes, rounded down to a page.
    room: u64,
}

/// Up servers with at least a page of room, best first: least load, then most room, then id.
fn ranked(snapshot: &Snapshot, page: u64) -> Vec<Candidate> {
    let loads = loads(snapshot);
    let mut candidates: Vec<Candidate> = snapshot
        .servers
        .iter()
        .filter(|s| s.state == ServerState::Up)
        .map(|s| Candidate {
            id: s.id,
            load: loads.get(&s.id).copied().unwrap_or(0.0),
            room: available_bytes(snapshot, s) / page * page,
        })
        .filter(|c| c.room > 0)
        .collect();
    candidates.sort_by(rank);
    candidates
}

fn rank(a: &Candidate, b: &Candidate) -> Ordering {
    a.load.total_cmp(&b.load).then(b.room.cmp(&a.room)).then(a.id.cmp(&b.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: u64 = 1 << 30;
    const M: u64 = 1 << 20;

    fn server(id: u32, cap_bytes: u64) -> ServerView {
        ServerView { id: ServerId(id), state: ServerState::Up, cap_bytes, host_room_bytes: None }
    }

    fn hold(client: &str, server: u32, bytes: u64) -> Holding {
        Holding { client: ClientId(client.into()), server: ServerId(server), bytes }
    }

    fn grants(list: &[(u32, u64)]) -> Vec<Grant> {
        list.iter().map(|&(s, bytes)| Grant { server: ServerId(s), bytes }).collect()
    }

    #[test]
    fn load_is_the_weighted_client_count() {
        // Client a is spread evenly over four servers, b is whole on server 4, c is split 3:1.
        let mut holdings: Vec<_> = (0..4).map(|s| hold("a", s, G)).collect();
        holdings.push(hold("b", 4, 2 * G));
        holdings.extend([hold("c", 0, 3 * G), hold("c", 4, G)]);
        let snapshot = Snapshot { servers: (0..5).map(|i| server(i, 16 * G)).collect(), holdings };
        let loads = loads(&snapshot);
        assert_eq!(loads[&ServerId(0)], 0.25 + 0.75);
        assert_eq!(loads[&ServerId(1)], 0.25);
        assert_eq!(loads[&ServerId(3)], 0.25);
        assert_eq!(loads[&ServerId(4)], 1.0 + 0.25);
    }

    #[test]
    fn least_loaded_server_wins() {
        // Server 0 has two whole clients (load 2), server 1 one client spread over 1 and 2
        // (load 0.5 each), server 2 also a whole client (1.5): server 1 is the least loaded.
        let snapshot = Snapshot {
            servers: vec![server(0, 8 * G), server(1, 8 * G), server(2, 8 * G)],
            holdings: vec![hold("a", 0, G), hold("b", 0, G), hold("c", 1, G), hold("c", 2, G), hold("d", 2, G)],
        };
        assert_eq!(assign(&snapshot, G, 4096), Ok(grants(&[(1, G)])));
    }

    #[test]
    fn a_client_spread_over_four_counts_a_quarter_on_each() {
        // a over servers 0..4 (0.25 each); b whole on server 4 (1.0). A newcomer goes to one of
        // the quarter-loaded servers, not to 4, although 4 has the most room.
        let mut holdings: Vec<_> = (0..4).map(|s| hold("a", s, G)).collect();
        holdings.push(hold("b", 4, G));
        let mut servers: Vec<_> = (0..4).map(|i| server(i, 8 * G)).collect();
        servers.push(server(4, 64 * G));
        servers[2].cap_bytes = 9 * G; // the most room among the quarter-loaded ones
        let snapshot = Snapshot { servers, holdings };
        assert_eq!(assign(&snapshot, 2 * G, 4096), Ok(grants(&[(2, 2 * G)])));
    }

    #[test]
    fn ties_go_to_the_most_available_memory() {
        let mut servers = vec![server(0, 8 * G), server(1, 8 * G), server(2, 8 * G)];
        servers[0].host_room_bytes = Some(3 * G);
        servers[1].host_room_bytes = Some(7 * G);
        servers[2].host_room_bytes = Some(5 * G);
        let snapshot = Snapshot { servers, holdings: vec![] };
        assert_eq!(assign(&snapshot, G, 4096), Ok(grants(&[(1, G)])));
        // Equal in everything: the lowest id.
        let snapshot = Snapshot { servers: vec![server(3, 8 * G), server(1, 8 * G)], holdings: vec![] };
        assert_eq!(assign(&snapshot, G, 4096), Ok(grants(&[(1, G)])));
    }

    #[test]
    fn splits_in_load_order_when_one_server_has_not_room() {
        // Server 0 (load 0) has 1 GiB left of its cap; server 1 (load 1) 6 GiB; server 2
        // (load 2) 8 GiB. 4 GiB: 1 on server 0, the other 3 on server 1.
        let snapshot = Snapshot {
            servers: vec![server(0, G), server(1, 7 * G), server(2, 10 * G)],
            holdings: vec![hold("a", 1, G), hold("b", 2, G), hold("c", 2, G)],
        };
        assert_eq!(assign(&snapshot, 4 * G, 4096), Ok(grants(&[(0, G), (1, 3 * G)])));
    }

    #[test]
    fn host_memory_limits_room() {
        // The cap leaves 8 GiB but the host can give only 512 MiB: the rest spills over.
        let mut servers = vec![server(0, 8 * G), server(1, 8 * G)];
        servers[0].host_room_bytes = Some(512 * M);
        let snapshot = Snapshot { servers, holdings: vec![hold("a", 1, G)] };
        assert_eq!(assign(&snapshot, G, 4096), Ok(grants(&[(0, 512 * M), (1, 512 * M)])));
    }

    #[test]
    fn shares_are_whole_pages() {
        // 1 MiB + 1 byte rounds up to 5 pages of 256 KiB; server 0's room (700 KiB) rounds
        // down to 2 pages (server 1 has a client, so server 0 comes first).
        let page = 256 << 10;
        let snapshot =
            Snapshot { servers: vec![server(0, 700 << 10), server(1, G)], holdings: vec![hold("a", 1, page)] };
        assert_eq!(assign(&snapshot, M + 1, page), Ok(grants(&[(0, 2 * page), (1, 3 * page)])));
    }

    #[test]
    fn draining_and_down_servers_get_nothing() {
        let mut servers = vec![server(0, 8 * G), server(1, 8 * G), server(2, 8 * G)];
        servers[0].state = ServerState::Draining;
        servers[1].state = ServerState::Down;
        let snapshot = Snapshot { servers, holdings: vec![hold("a", 2, G)] };
        assert_eq!(assign(&snapshot, G, 4096), Ok(grants(&[(2, G)])));
    }

    #[test]
    fn a_full_pool_names_requested_and_available_bytes() {
        let mut servers = vec![server(0, 2 * G), server(1, 2 * G), server(2, 64 * G)];
        servers[2].state = ServerState::Draining;
        let snapshot = Snapshot { servers, holdings: vec![hold("a", 0, G), hold("b", 1, 2 * G)] };
        let err = assign(&snapshot, 3 * G, 4096).unwrap_err();
        assert_eq!(err, AssignError::Insufficient { requested: 3 * G, available: G, servers_up: 2 });
        assert_eq!(
            err.to_string(),
            "the pool cannot hold 3221225472 bytes: 1073741824 bytes are available on 2 servers up"
        );
    }

    #[test]
    fn no_server_ever_exceeds_its_cap() {
        // Join clients of varied sizes until the pool refuses; after each, every server's
        // grants stay within its cap.
        let caps = [3 * G, 5 * G, G, 7 * G];
        let mut snapshot = Snapshot {
            servers: caps.iter().enumerate().map(|(i, &c)| server(i as u32, c)).collect(),
            holdings: vec![],
        };
        let sizes = [G / 2, 3 * G, 100 * M, 2 * G, 5 * G, 777 * M];
        for (n, &size) in sizes.iter().cycle().take(40).enumerate() {
            let Ok(granted) = assign(&snapshot, size, 4096) else { continue };
            assert_eq!(granted.iter().map(|g| g.bytes).sum::<u64>(), size.div_ceil(4096) * 4096);
            let client = format!("c{n}");
            snapshot.holdings.extend(granted.iter().map(|g| Holding {
                client: ClientId(client.clone()),
                server: g.server,
                bytes: g.bytes,
            }));
            for s in &snapshot.servers {
                assert!(used_bytes(&snapshot, s.id) <= s.cap_bytes, "server {} over its cap", s.id);
            }
        }
        let total: u64 = caps.iter().sum();
        assert!(total - snapshot.holdings.iter().map(|h| h.bytes).sum::<u64>() < G, "the pool filled up");
    }
}
