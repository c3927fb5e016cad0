//! The user properties of a message handed to rumqttc, kept to send it again after a reconnect.
//! rumqttc takes its own `(String, String)` pairs, so keeping a second set of pairs cost two
//! allocations and two frees per property of every message; packed, the kept copy is one string
//! and one list of offsets, unpacked only when a reconnect sends the message again (1,200
//! instructions fewer per event of a dozen CloudEvents properties, docs/performance.md).

/// Name and value pairs in one string.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct PackedPairs {
    /// Every name and value, one after the other.
    text: String,
    /// Where each pair's name and value end in `text`.
    ends: Vec<(usize, usize)>,
}

impl PackedPairs {
    /// Packs `pairs`.
    pub(super) fn of(pairs: &[(String, String)]) -> Self {
        let len = pairs.iter().map(|(k, v)| k.len() + v.len()).sum();
        let mut text = String::with_capacity(len);
        let mut ends = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            text.push_str(k);
            let name_end = text.len();
            text.push_str(v);
            ends.push((name_end, text.len()));
        }
        Self { text, ends }
    }

    /// The pairs again, in their order.
    pub(super) fn unpack(&self) -> Vec<(String, String)> {
        let mut start = 0;
        self.ends
            .iter()
            .map(|&(name_end, end)| {
                let pair = (
                    self.text[start..name_end].to_string(),
                    self.text[name_end..end].to_string(),
                );
                start = end;
                pair
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_come_back_as_they_went_in() {
        let pairs: Vec<(String, String)> = [
            ("specversion", "1.0"),
            ("", ""),
            ("subject", "température/°C"),
            ("sseid", ""),
            ("", "value without a name"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(PackedPairs::of(&pairs).unpack(), pairs);
        assert!(PackedPairs::of(&[]).unpack().is_empty());
    }
}
