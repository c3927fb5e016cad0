//! Why ingest drops an event or ignores part of one: the reason names every service, status
//! report and test uses, defined once so the counters (`events_dropped{reason}`) and the docs
//! cannot drift apart.

/// The event's data went over `--max-event-bytes`: it was discarded by the SSE parser.
pub const EVENT_TOO_LARGE: &str = "event_too_large";

/// The event's `event:` value went over [`crate::limits::EVENT_TYPE_BYTES_MAX`]: it cannot be
/// routed, so it was discarded.
pub const EVENT_TYPE_TOO_LONG: &str = "event_type_too_long";

/// A routed copy of the event, encoded with its route, went over
/// [`crate::limits::FORWARDED_EVENT_BYTES_MAX`] (an event near the size limit on a route with
/// very long names or topic): that copy was dropped instead of being refused downstream.
pub const ENVELOPE_TOO_LARGE: &str = "envelope_too_large";

/// Every reason an event is dropped, for documentation and exhaustive tests.
pub const DROP_REASONS: [&str; 3] = [EVENT_TOO_LARGE, EVENT_TYPE_TOO_LONG, ENVELOPE_TOO_LARGE];

/// Notice (not a drop): an `id:` value went over [`crate::limits::EVENT_ID_BYTES_MAX`] and was
/// ignored; the event still fired with the previous last event ID.
pub const ID_TOO_LONG: &str = "id_too_long";

/// Every notice reason, for documentation and exhaustive tests.
pub const NOTICE_REASONS: [&str; 1] = [ID_TOO_LONG];
