//! Logged-in sessions, in memory: a random 256-bit id (the cookie) with its own CSRF token, a
//! bounded lifetime, and a bounded number of them (the oldest is evicted), so that a stream of
//! logins costs bounded memory. A restart logs everyone out, which is acceptable for a console.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sse_runtime::duration_flag::Bounds;

use super::secret;

/// Default of `--console-session-lifetime`: a working day.
pub const LIFETIME_DEFAULT: &str = "12h";
/// `--console-session-lifetime`: under a minute no one could use a login; over 30 days a
/// stolen cookie stays good for too long.
pub const LIFETIME: Bounds =
    Bounds::within(Duration::from_secs(60), Duration::from_secs(30 * 24 * 3600));
/// Default of `--console-max-sessions`: far more browsers than a console has operators.
pub const MAX_DEFAULT: u32 = 1000;

#[derive(Debug)]
struct Session {
    csrf: String,
    created: Instant,
}

/// The sessions of this process.
#[derive(Debug)]
pub struct Sessions {
    lifetime: Duration,
    max: usize,
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// An empty store: sessions last `lifetime`, at most `max` at once.
    pub fn new(lifetime: Duration, max: usize) -> Self {
        Self {
            lifetime,
            max: max.max(1),
            map: Mutex::default(),
        }
    }

    /// How long a session lasts (the cookie's `Max-Age`).
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// A new session: its id and its CSRF token. Expired sessions go first, then the oldest
    /// while the store is full.
    pub fn create(&self) -> (String, String) {
        self.create_at(Instant::now())
    }

    fn create_at(&self, now: Instant) -> (String, String) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, s| now.saturating_duration_since(s.created) < self.lifetime);
        while map.len() >= self.max {
            let oldest = map
                .iter()
                .min_by_key(|(_, s)| s.created)
                .map(|(id, _)| id.clone());
            match oldest {
                Some(id) => map.remove(&id),
                None => break,
            };
        }
        let (id, csrf) = (secret::random_token(), secret::random_token());
        map.insert(
            id.clone(),
            Session {
                csrf: csrf.clone(),
                created: now,
            },
        );
        (id, csrf)
    }

    /// The CSRF token of the live session `id`; `None` if unknown or expired (and then gone).
    pub fn csrf(&self, id: &str) -> Option<String> {
        self.csrf_at(id, Instant::now())
    }

    fn csrf_at(&self, id: &str, now: Instant) -> Option<String> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let s = map.get(id)?;
        if now.saturating_duration_since(s.created) >= self.lifetime {
            map.remove(id);
            return None;
        }
        Some(s.csrf.clone())
    }

    /// Ends the session `id` (logout).
    pub fn remove(&self, id: &str) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(id);
    }

    /// How many sessions are held.
    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_lives_for_its_lifetime_and_no_longer() {
        let s = Sessions::new(Duration::from_secs(60), 10);
        let t0 = Instant::now();
        let (id, csrf) = s.create_at(t0);
        assert_ne!(id, csrf);
        assert_eq!(s.csrf_at(&id, t0 + Duration::from_secs(59)), Some(csrf));
        assert_eq!(s.csrf_at(&id, t0 + Duration::from_secs(60)), None);
        assert!(s.is_empty(), "an expired session is dropped when seen");
        assert_eq!(s.csrf_at("nope", t0), None);
    }

    #[test]
    fn the_oldest_session_is_evicted_when_full() {
        let s = Sessions::new(Duration::from_secs(3600), 2);
        let t0 = Instant::now();
        let (a, _) = s.create_at(t0);
        let (b, _) = s.create_at(t0 + Duration::from_secs(1));
        let (c, _) = s.create_at(t0 + Duration::from_secs(2));
        assert_eq!(s.len(), 2);
        let now = t0 + Duration::from_secs(3);
        assert!(s.csrf_at(&a, now).is_none());
        assert!(s.csrf_at(&b, now).is_some() && s.csrf_at(&c, now).is_some());
        s.remove(&b);
        assert!(s.csrf_at(&b, now).is_none());
    }
}
