//! The login attempt limit, per client: one guesser spends its own attempts, not everyone's.
//! A client is an IP address, an IPv6 one by its /64 (one host easily holds a whole /64). A
//! ceiling over all clients bounds what many addresses together can try; a client that logged
//! in before (the last [`TRUSTED_MAX`]) is held to its own limit only, so guessers spread over
//! many addresses cannot lock the operator out. Behind a proxy every client has the proxy's
//! address, so there the per-client limit is the proxy's.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

use axum::extract::FromRequestParts;
use axum::extract::connect_info::ConnectInfo;
use axum::http::request::Parts;
use sse_runtime::admin_rate::TokenBucket;

/// Login attempts a client may make per second once its burst is spent: guessing stays
/// hopeless.
pub const PER_CLIENT_PER_SECOND: f64 = 0.2;
/// Login attempts a client may make at once (a person mistyping a few times).
pub const PER_CLIENT_BURST: u32 = 10;
/// Login attempts per second over every client together, once their burst is spent.
pub const ALL_PER_SECOND: f64 = 2.0;
/// Login attempts over every client together at once.
pub const ALL_BURST: u32 = 50;
/// Clients whose attempts are remembered; beyond it the oldest is forgotten (and starts again
/// with a full burst, still under the ceiling).
pub const CLIENTS_MAX: usize = 1024;
/// Clients that logged in, remembered so the ceiling does not refuse them (the latest ones).
pub const TRUSTED_MAX: usize = 64;

/// The address a connection came from, as the server learnt it when it accepted it.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// The client of a request: its IP address, `None` where the server did not record it.
#[derive(Debug, Clone, Copy)]
pub struct Client(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let addr = parts.extensions.get::<ConnectInfo<ClientAddr>>();
        Ok(Self(addr.map(|ConnectInfo(ClientAddr(a))| a.ip())))
    }
}

/// Which limit refused an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// This client spent its attempts.
    Client,
    /// Every client together spent theirs.
    All,
}

/// The attempt limits of one console.
#[derive(Debug)]
pub struct Attempts {
    all: TokenBucket,
    clients: Mutex<Clients>,
    /// Clients that gave the right token, latest last.
    trusted: Mutex<std::collections::VecDeque<IpAddr>>,
}

/// Per-client buckets, with the order they were first seen in (to forget the oldest).
#[derive(Debug, Default)]
struct Clients {
    buckets: HashMap<IpAddr, TokenBucket>,
    order: std::collections::VecDeque<IpAddr>,
}

impl Default for Attempts {
    fn default() -> Self {
        Self {
            all: TokenBucket::new(ALL_PER_SECOND, ALL_BURST),
            clients: Mutex::default(),
            trusted: Mutex::default(),
        }
    }
}

impl Attempts {
    /// Takes an attempt for `client` (`None`: an address the server did not learn, counted
    /// under the ceiling only).
    pub fn try_take(&self, client: Option<IpAddr>) -> Result<(), Refused> {
        if let Some(ip) = client.map(key) {
            let mut c = self.clients.lock().unwrap_or_else(|e| e.into_inner());
            if !c.buckets.contains_key(&ip) {
                if c.buckets.len() >= CLIENTS_MAX
                    && let Some(oldest) = c.order.pop_front()
                {
                    c.buckets.remove(&oldest);
                }
                c.order.push_back(ip);
            }
            let bucket = c
                .buckets
                .entry(ip)
                .or_insert_with(|| TokenBucket::new(PER_CLIENT_PER_SECOND, PER_CLIENT_BURST));
            if !bucket.try_take() {
                return Err(Refused::Client);
            }
        }
        if self.all.try_take() || client.is_some_and(|ip| self.is_trusted(ip)) {
            Ok(())
        } else {
            Err(Refused::All)
        }
    }

    /// Remembers that `client` gave the right token.
    pub fn succeeded(&self, client: Option<IpAddr>) {
        let Some(ip) = client.map(key) else {
            return;
        };
        let mut t = self.trusted.lock().unwrap_or_else(|e| e.into_inner());
        t.retain(|k| *k != ip);
        if t.len() >= TRUSTED_MAX {
            t.pop_front();
        }
        t.push_back(ip);
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        let t = self.trusted.lock().unwrap_or_else(|e| e.into_inner());
        t.contains(&key(ip))
    }

    /// How many clients are remembered.
    #[cfg(test)]
    fn clients(&self) -> usize {
        self.clients.lock().map(|c| c.buckets.len()).unwrap_or(0)
    }
}

/// The client an address counts as: itself, or for IPv6 its /64 (an IPv4-mapped address is
/// its IPv4 one).
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn a_guesser_spends_its_own_attempts_not_everyones() {
        let a = Attempts::default();
        for _ in 0..PER_CLIENT_BURST {
            assert_eq!(a.try_take(ip("192.0.2.7")), Ok(()));
        }
        assert_eq!(a.try_take(ip("192.0.2.7")), Err(Refused::Client));
        // Another client still logs in.
        assert_eq!(a.try_take(ip("192.0.2.8")), Ok(()));
        // One host's other addresses in its /64 are the same client.
        for _ in 0..PER_CLIENT_BURST {
            assert_eq!(a.try_take(ip("2001:db8:1:2::10")), Ok(()));
        }
        assert_eq!(a.try_take(ip("2001:db8:1:2::99")), Err(Refused::Client));
        assert_eq!(a.try_take(ip("2001:db8:1:3::10")), Ok(()));
    }

    #[test]
    fn many_clients_together_meet_the_ceiling_and_memory_stays_bounded() {
        let a = Attempts::default();
        let mut taken = 0;
        let mut refused_all = false;
        for i in 0..(CLIENTS_MAX as u32 + 500) {
            let client = Some(IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i)));
            match a.try_take(client) {
                Ok(()) => taken += 1,
                Err(Refused::All) => refused_all = true,
                Err(Refused::Client) => panic!("a new client refused as itself"),
            }
        }
        assert!(refused_all);
        // The ceiling's burst, and what it refilled while the loop ran (well under a second).
        assert!(taken < ALL_BURST + 5, "{taken}");
        assert_eq!(a.clients(), CLIENTS_MAX);
        // An address the server did not learn counts under the ceiling only.
        assert_eq!(a.try_take(None), Err(Refused::All));
    }

    #[test]
    fn a_client_that_logged_in_before_passes_the_spent_ceiling() {
        let a = Attempts::default();
        a.succeeded(ip("192.0.2.1"));
        // Guessers spread over many addresses spend the ceiling.
        for i in 0..(ALL_BURST + 20) {
            let _ = a.try_take(Some(IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i))));
        }
        assert_eq!(a.try_take(ip("192.0.2.9")), Err(Refused::All));
        assert_eq!(
            a.try_take(ip("192.0.2.1")),
            Ok(()),
            "the operator still logs in"
        );
        // Still held to its own limit.
        for _ in 1..PER_CLIENT_BURST {
            let _ = a.try_take(ip("192.0.2.1"));
        }
        assert_eq!(a.try_take(ip("192.0.2.1")), Err(Refused::Client));
    }
}
