//! Which SSE streams this ingest replica reads: rendezvous (highest random weight) hashing of the
//! stream key over the replica ordinals `0..replicas`, so each stream is read by exactly one
//! replica and a change of the replica count moves only the streams it must.
//!
//! The weight is SHA-256 of the key and the ordinal, the same on every replica, build and
//! platform (never std's randomly seeded hasher). The ordinal comes from `--ordinal`
//! [`INGEST_ORDINAL`] or the StatefulSet pod name `<name>-<ordinal>` [`POD_NAME`]; the count from
//! `--replicas` [`INGEST_REPLICAS`] (1, the default, reads every stream).

use sse_runtime::rendezvous;

use crate::routing::StreamPlan;

/// Why the shard settings cannot be used (a configuration fault).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    /// More than one replica but no way to tell which one this is.
    #[error(
        "--replicas (INGEST_REPLICAS) is {0} but the ordinal is unknown: set --ordinal (INGEST_ORDINAL) or --pod-name (POD_NAME) as <name>-<ordinal>"
    )]
    NoOrdinal(u32),
    /// The pod name does not end in `-<ordinal>`.
    #[error("--pod-name (POD_NAME) {0:?} does not end in -<ordinal>")]
    PodName(String),
    /// The ordinal is not below the replica count.
    #[error("ordinal {ordinal} is not below --replicas (INGEST_REPLICAS) {replicas}")]
    OutOfRange {
        /// This replica's ordinal.
        ordinal: u32,
        /// The replica count.
        replicas: u32,
    },
    /// Zero replicas.
    #[error("--replicas (INGEST_REPLICAS) must be at least 1")]
    NoReplicas,
}

/// This replica's share of the streams: its ordinal among `replicas`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    ordinal: u32,
    replicas: u32,
}

impl Default for Shard {
    /// The only replica: reads every stream.
    fn default() -> Self {
        Self {
            ordinal: 0,
            replicas: 1,
        }
    }
}

impl Shard {
    /// Replica `ordinal` of `replicas`.
    pub fn new(ordinal: u32, replicas: u32) -> Result<Self, ShardError> {
        if replicas == 0 {
            return Err(ShardError::NoReplicas);
        }
        if ordinal >= replicas {
            return Err(ShardError::OutOfRange { ordinal, replicas });
        }
        Ok(Self { ordinal, replicas })
    }

    /// The shard the flags name: `ordinal` (`--ordinal`), else the ordinal of `pod_name`
    /// (`--pod-name`), among `replicas` (`--replicas`); with one replica the ordinal may be
    /// unknown (it is 0).
    pub fn from_flags(
        replicas: u32,
        ordinal: Option<u32>,
        pod_name: Option<&str>,
    ) -> Result<Self, ShardError> {
        if replicas <= 1 && ordinal.is_none() {
            return Self::new(0, replicas.max(1));
        }
        let ordinal = match (ordinal, pod_name) {
            (Some(o), _) => Some(o),
            (None, Some(name)) if !name.is_empty() => {
                Some(ordinal_of_pod(name).ok_or_else(|| ShardError::PodName(name.to_string()))?)
            }
            _ => None,
        };
        match ordinal {
            Some(o) => Self::new(o, replicas),
            None if replicas <= 1 => Self::new(0, replicas.max(1)),
            None => Err(ShardError::NoOrdinal(replicas)),
        }
    }

    /// This replica's ordinal.
    pub fn ordinal(&self) -> u32 {
        self.ordinal
    }

    /// How many replicas split the streams.
    pub fn replicas(&self) -> u32 {
        self.replicas
    }

    /// Whether this replica reads the stream `key`.
    pub fn owns(&self, key: &str) -> bool {
        self.replicas <= 1 || owner(key, self.replicas) == self.ordinal
    }

    /// The plans this replica reads, in their order.
    pub fn filter(&self, plans: Vec<StreamPlan>) -> Vec<StreamPlan> {
        plans.into_iter().filter(|p| self.owns(&p.key)).collect()
    }

    /// [`Shard::filter`], logging the split when there are several replicas.
    pub fn select(&self, plans: Vec<StreamPlan>) -> Vec<StreamPlan> {
        let total = plans.len();
        let owned = self.filter(plans);
        if self.replicas > 1 {
            tracing::info!(
                ordinal = self.ordinal,
                replicas = self.replicas,
                owned = owned.len(),
                total,
                "streams split among replicas"
            );
        }
        owned
    }
}

/// The ordinal that reads `key` among `replicas` (0 for fewer than two).
pub fn owner(key: &str, replicas: u32) -> u32 {
    (0..replicas.max(1))
        .max_by_key(|&o| (weight(key, o), o))
        .unwrap_or(0)
}

/// The rendezvous weight of `key` on replica `ordinal` (sse-runtime's, over the ordinal as a
/// big-endian u32).
fn weight(key: &str, ordinal: u32) -> u64 {
    rendezvous::weight(key, &ordinal.to_be_bytes())
}

/// The ordinal at the end of a StatefulSet pod name (`ingest-2` is 2).
pub fn ordinal_of_pod(name: &str) -> Option<u32> {
    let (_, n) = name.rsplit_once('-')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("device-{i}/sse-0|http://10.0.0.{}:8080/events/{i}", i % 7))
            .collect()
    }

    #[test]
    fn every_key_is_owned_by_exactly_one_ordinal() {
        for replicas in 1..=5 {
            let shards: Vec<Shard> = (0..replicas)
                .map(|o| Shard::new(o, replicas).unwrap())
                .collect();
            for k in keys(500) {
                let owners: Vec<u32> = shards
                    .iter()
                    .filter(|s| s.owns(&k))
                    .map(|s| s.ordinal())
                    .collect();
                assert_eq!(owners, [owner(&k, replicas)], "{k} with {replicas}");
            }
        }
    }

    #[test]
    fn going_from_three_to_two_moves_only_the_keys_of_ordinal_two() {
        let mut moved = 0;
        for k in keys(2000) {
            let before = owner(&k, 3);
            let after = owner(&k, 2);
            if before == 2 {
                moved += 1;
                assert!(after < 2);
            } else {
                assert_eq!(before, after, "{k} moved without need");
            }
        }
        assert!(moved > 0);
        // and 3 -> 4 moves keys only onto the new ordinal
        for k in keys(2000) {
            let (before, after) = (owner(&k, 3), owner(&k, 4));
            assert!(after == before || after == 3, "{k}: {before} -> {after}");
        }
    }

    #[test]
    fn balance_is_roughly_even() {
        let n = 3000;
        for replicas in [2u32, 3, 5] {
            let mut counts = vec![0usize; replicas as usize];
            for k in keys(n) {
                counts[owner(&k, replicas) as usize] += 1;
            }
            let fair = n / replicas as usize;
            for c in &counts {
                assert!(
                    *c > fair * 8 / 10 && *c < fair * 12 / 10,
                    "{counts:?} with {replicas}"
                );
            }
        }
    }

    #[test]
    fn weights_are_stable_across_builds() {
        // Pinned: a change here would move streams between replicas of different versions.
        let pinned: Vec<u32> = ["a", "b", "c", "d", "e", "f"]
            .iter()
            .map(|k| owner(k, 3))
            .collect();
        assert_eq!(pinned, PINNED);
    }
    /// Owners of "a".."f" among 3, computed independently (Python hashlib).
    const PINNED: [u32; 6] = [2, 2, 0, 1, 0, 1];

    #[test]
    fn pod_names_give_ordinals() {
        assert_eq!(ordinal_of_pod("sse-ingest-0"), Some(0));
        assert_eq!(ordinal_of_pod("sse-ingest-12"), Some(12));
        assert_eq!(ordinal_of_pod("ingest"), None);
        assert_eq!(ordinal_of_pod("ingest-"), None);
        assert_eq!(ordinal_of_pod("ingest-x1"), None);
        assert_eq!(ordinal_of_pod("ingest-+1"), None);
    }

    #[test]
    fn shard_from_flags_and_pod_name() {
        let from = |replicas, ordinal, pod: Option<&str>| Shard::from_flags(replicas, ordinal, pod);
        assert_eq!(from(1, None, None), Ok(Shard::default()));
        assert_eq!(
            from(3, None, Some("sse-ingest-2")),
            Ok(Shard::new(2, 3).unwrap())
        );
        assert_eq!(
            from(3, Some(1), Some("sse-ingest-2")),
            Ok(Shard::new(1, 3).unwrap())
        );
        assert_eq!(from(3, None, None), Err(ShardError::NoOrdinal(3)));
        assert_eq!(
            from(2, Some(2), None),
            Err(ShardError::OutOfRange {
                ordinal: 2,
                replicas: 2
            })
        );
        assert!(matches!(
            from(2, None, Some("ingest")),
            Err(ShardError::PodName(_))
        ));
        // one replica reads everything whatever the pod is called
        let one = from(1, None, Some("anything")).unwrap();
        assert!(keys(20).iter().all(|k| one.owns(k)));
    }
}
