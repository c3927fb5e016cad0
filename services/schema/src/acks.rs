//! What the schema service adds to the acks it relays: the schema each event was tagged with, or
//! why it has none, so ingest can show the message schema reference of every dataset and event.
//!
//! One [`AckNotes`] per `Process` stream: a note per forwarded event, kept per stream key in
//! `seq` order and taken out when its ack passes. Its size is bounded by ingest's in-flight window,
//! and it is dropped with the stream.

use std::sync::{Arc, Mutex};

use foldhash::HashMap;
use sse_proto::v1::{Ack, Event, NoSchemaReason, SchemaFrozenReason, SchemaReference};
use sse_runtime::seq::SeqQueue;

use crate::pipeline::{NoSchema, Outcome, SchemaRef};

/// What an ack of one event gets: its schema or why it has none, and whether its subject's
/// schema stopped evolving.
#[derive(Debug, Clone, Default)]
struct Note {
    schema: Option<Arc<SchemaRef>>,
    no_schema: NoSchemaReason,
    frozen: SchemaFrozenReason,
}

/// Notes of the events of one stream whose acks have not passed yet.
#[derive(Debug, Default)]
pub struct AckNotes {
    /// Per stream key, by `seq`.
    by_stream: Mutex<HashMap<String, SeqQueue<Note>>>,
}

/// The proto reason for a pipeline reason.
pub fn reason_to_proto(r: NoSchema) -> NoSchemaReason {
    match r {
        NoSchema::NotJson => NoSchemaReason::NotJson,
        NoSchema::TooLarge => NoSchemaReason::TooLarge,
        NoSchema::TooDeep => NoSchemaReason::TooDeep,
        NoSchema::TooManyProperties => NoSchemaReason::TooManyProperties,
        NoSchema::RegistryError => NoSchemaReason::RegistryError,
        NoSchema::Frozen => NoSchemaReason::SchemaFrozen,
    }
}

/// The proto reference of a schema version.
pub fn reference_to_proto(r: &SchemaRef) -> SchemaReference {
    SchemaReference {
        name: r.name.clone(),
        namespace: r.namespace.clone(),
        version: r.version.clone(),
    }
}

impl AckNotes {
    /// Notes what inference made of `ev`; `None` for an event without a route.
    pub fn record(&self, ev: &Event, outcome: Option<&Outcome>) {
        let note = match outcome {
            Some(Outcome::Schema(r)) => Note {
                schema: Some(r.clone()),
                ..Note::default()
            },
            Some(Outcome::Frozen { schema, cap }) => Note {
                schema: schema.clone(),
                no_schema: match schema {
                    Some(_) => NoSchemaReason::Unspecified,
                    None => NoSchemaReason::SchemaFrozen,
                },
                frozen: cap.to_proto(),
            },
            Some(Outcome::NoSchema(r)) => Note {
                no_schema: reason_to_proto(*r),
                ..Note::default()
            },
            None => Note {
                no_schema: NoSchemaReason::NoRoute,
                ..Note::default()
            },
        };
        let mut map = self.by_stream.lock().unwrap_or_else(|p| p.into_inner());
        let q = match map.get_mut(ev.stream_key.as_str()) {
            Some(q) => q,
            None => map.entry(ev.stream_key.clone()).or_default(),
        };
        // A re-sent event's note replaces the one it had.
        q.insert(ev.seq, note);
    }

    /// Sets the schema fields of `acks` from the notes of their events, taking the notes out.
    pub fn annotate(&self, acks: &mut [Ack]) {
        let mut map = self.by_stream.lock().unwrap_or_else(|p| p.into_inner());
        for ack in acks {
            let Some(q) = map.get_mut(ack.stream_key.as_str()) else {
                continue;
            };
            if let Some(note) = q.take(ack.seq) {
                ack.schema = note.schema.as_deref().map(reference_to_proto);
                ack.set_no_schema_reason(note.no_schema);
                ack.set_schema_frozen_reason(note.frozen);
            }
            if q.is_empty() {
                map.remove(ack.stream_key.as_str());
            }
        }
    }

    /// How many events await their ack.
    pub fn len(&self) -> usize {
        let map = self.by_stream.lock().unwrap_or_else(|p| p.into_inner());
        map.values().map(SeqQueue::len).sum()
    }

    /// Whether no event awaits its ack.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(key: &str, seq: u64) -> Event {
        Event {
            stream_key: key.into(),
            seq,
            ..Default::default()
        }
    }

    fn ack(key: &str, seq: u64) -> Ack {
        Ack {
            stream_key: key.into(),
            seq,
            ..Default::default()
        }
    }

    #[test]
    fn acks_get_the_note_of_their_event_once() {
        let notes = AckNotes::default();
        let r = Arc::new(SchemaRef {
            name: "N".into(),
            namespace: "ns".into(),
            version: "2".into(),
            dataschema: "aio-sr://ns/N:2".into(),
        });
        notes.record(&ev("s", 1), Some(&Outcome::Schema(r)));
        notes.record(&ev("s", 2), Some(&Outcome::NoSchema(NoSchema::TooDeep)));
        notes.record(&ev("t", 1), None);
        let frozen = Outcome::Frozen {
            schema: None,
            cap: crate::caps::Cap::RegistryBytes,
        };
        notes.record(&ev("t", 2), Some(&frozen));
        assert_eq!(notes.len(), 4);
        let mut acks = vec![
            ack("s", 1),
            ack("s", 2),
            ack("t", 1),
            ack("u", 9),
            ack("t", 2),
        ];
        notes.annotate(&mut acks);
        assert_eq!(
            acks[0].schema,
            Some(SchemaReference {
                name: "N".into(),
                namespace: "ns".into(),
                version: "2".into()
            })
        );
        assert_eq!(acks[0].no_schema_reason(), NoSchemaReason::Unspecified);
        assert_eq!(acks[1].schema, None);
        assert_eq!(acks[1].no_schema_reason(), NoSchemaReason::TooDeep);
        assert_eq!(acks[2].no_schema_reason(), NoSchemaReason::NoRoute);
        assert_eq!(acks[3], ack("u", 9));
        assert_eq!(acks[4].schema, None);
        assert_eq!(acks[4].no_schema_reason(), NoSchemaReason::SchemaFrozen);
        assert_eq!(
            acks[4].schema_frozen_reason(),
            SchemaFrozenReason::MaxRegistryBytes
        );
        assert_eq!(
            acks[0].schema_frozen_reason(),
            SchemaFrozenReason::Unspecified
        );
        assert!(notes.is_empty());
        // A second ack of the same event (a re-send) carries nothing more.
        let mut again = vec![ack("s", 1)];
        notes.annotate(&mut again);
        assert_eq!(again[0], ack("s", 1));
    }

    #[test]
    fn re_sent_and_out_of_order_events_keep_one_note_each() {
        let notes = AckNotes::default();
        let tagged = |n: &str| {
            Some(Outcome::Schema(Arc::new(SchemaRef {
                name: n.into(),
                namespace: "ns".into(),
                version: "1".into(),
                dataschema: String::new(),
            })))
        };
        for (seq, name) in [(1, "a"), (2, "b"), (4, "d"), (3, "c"), (2, "B")] {
            notes.record(&ev("s", seq), tagged(name).as_ref());
        }
        assert_eq!(notes.len(), 4, "the re-sent event 2 replaced its note");
        // Acks out of order, one for an event never seen, and one twice.
        let mut acks = vec![
            ack("s", 3),
            ack("s", 1),
            ack("s", 9),
            ack("s", 4),
            ack("s", 3),
        ];
        notes.annotate(&mut acks);
        let names: Vec<_> = acks
            .iter()
            .map(|a| a.schema.as_ref().map(|s| s.name.as_str()))
            .collect();
        assert_eq!(names, [Some("c"), Some("a"), None, Some("d"), None]);
        assert_eq!(notes.len(), 1);
        let mut last = vec![ack("s", 2)];
        notes.annotate(&mut last);
        assert_eq!(last[0].schema.as_ref().map(|s| s.name.as_str()), Some("B"));
        assert!(notes.is_empty());
    }
}
