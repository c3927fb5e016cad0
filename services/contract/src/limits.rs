//! Every size limit on an event's path, defined once.
//!
//! An event crosses three decoders after ingest's parser: schema's gRPC server, the publisher's
//! gRPC server and the broker. Each event limit here sits below every decode limit on that path,
//! so an event ingest accepts is never refused further on (where it could only be re-sent
//! forever, stalling its stream's peers). The relations are checked at compile time below.

/// One kibibyte.
const KIB: usize = 1024;
/// One mebibyte.
const MIB: usize = 1024 * KIB;

/// Default for the largest SSE event data ingest forwards (`--max-event-bytes`); larger events
/// are dropped and counted with reason `event_too_large`.
pub const EVENT_BYTES_DEFAULT: usize = MIB;

/// Largest value `--max-event-bytes` (and the size of a `PutSchema` / `InferSchema` payload)
/// may take: every decoder on the path accepts this plus [`ENVELOPE_BYTES_MAX`].
pub const EVENT_BYTES_MAX: usize = 4 * MIB;

/// Longest SSE `id:` value kept as the last event ID. A longer one is ignored (the event still
/// fires with the previous last event ID), as the standard ignores an `id` holding NUL.
pub const EVENT_ID_BYTES_MAX: usize = KIB;

/// Longest SSE `event:` value. An event with a longer type cannot be routed: it is dropped and
/// counted with reason `event_type_too_long`.
pub const EVENT_TYPE_BYTES_MAX: usize = KIB;

/// Room for everything an event carries besides its data, encoded: ids, subject, source,
/// destination, trace context, schema reference and framing. Each of those fields is bounded
/// well below this (names by Kubernetes' 253 bytes, the id and type above by 1 KiB).
pub const ENVELOPE_BYTES_MAX: usize = 64 * KIB;

/// Largest single message on a gRPC stream or call between the services, for the sender's
/// encoder and the receiver's decoder alike. A batch of events is cut before it would exceed it;
/// one event of [`EVENT_BYTES_MAX`] with its envelope always fits.
pub const GRPC_MESSAGE_BYTES_MAX: usize = EVENT_BYTES_MAX + ENVELOPE_BYTES_MAX;

/// Largest routed event ingest sends, encoded: room is left below [`GRPC_MESSAGE_BYTES_MAX`]
/// for what schema adds (schema reference, child trace context). A larger one (an event near
/// the limit on a route with very long names) is dropped and counted (`envelope_too_large`)
/// rather than refused by schema's decoder and re-sent forever.
pub const FORWARDED_EVENT_BYTES_MAX: usize = GRPC_MESSAGE_BYTES_MAX - 16 * KIB;

/// Size at which a batch of events on a gRPC stream is cut (encoded): batches larger than this
/// gain no throughput and only delay their first event's ack. Never above
/// [`GRPC_MESSAGE_BYTES_MAX`]; one larger event still goes alone.
pub const GRPC_BATCH_BYTES: usize = MIB;

/// Largest MQTT packet the connector sends (an event's data plus topic and properties).
pub const MQTT_PACKET_BYTES_MAX: usize = EVENT_BYTES_MAX + ENVELOPE_BYTES_MAX;

/// Largest MQTT packet a connector client accepts from the broker on its own control topics
/// (checkpoints, state store responses). Sent as the CONNECT Maximum Packet Size, so an MQTT 5
/// broker discards a larger message for this client instead of delivering it.
pub const MQTT_CONTROL_PACKET_BYTES_MAX: usize = 64 * KIB;

/// Largest MQTT packet the schema registry client accepts: a registry answer carries a schema.
pub const MQTT_REGISTRY_PACKET_BYTES_MAX: usize = EVENT_BYTES_MAX + ENVELOPE_BYTES_MAX;

/// Largest MQTT packet the Azure Device Registry client accepts: a Device or Asset definition,
/// which as a Kubernetes object is bounded by the API server's 1.5 MiB request limit, with
/// room for topic and properties. Larger answers or notifications are discarded by the broker.
pub const MQTT_ADR_PACKET_BYTES_MAX: usize = 2 * MIB;

/// Largest `PutSchema` / `InferSchema` request, encoded: a text of [`EVENT_BYTES_MAX`] plus
/// room for the field tags and `PutSchema`'s version. A larger one is refused from its gRPC
/// frame header, before it is decoded.
pub const ADMIN_REQUEST_BYTES_MAX: usize = EVENT_BYTES_MAX + KIB;

/// Most payload bytes a tailed message carries (`PublisherService.Tail`; a request, `ssectl tail`
/// or the console's live view may ask for fewer): enough to read an event, small enough that a
/// full tail queue stays small.
pub const TAIL_PAYLOAD_BYTES_MAX: usize = 16 * KIB;

/// Largest checkpoint record (one stream's resume point) read back from a store; a larger one is
/// skipped with a warning and its stream starts without it.
pub const CHECKPOINT_RECORD_BYTES_MAX: usize = 8 * KIB;

// The relations the module doc promises, checked when the crate compiles.
const _: () = assert!(EVENT_BYTES_DEFAULT <= EVENT_BYTES_MAX);
const _: () = assert!(EVENT_ID_BYTES_MAX + EVENT_TYPE_BYTES_MAX < ENVELOPE_BYTES_MAX / 4);
const _: () = assert!(EVENT_BYTES_MAX + ENVELOPE_BYTES_MAX <= GRPC_MESSAGE_BYTES_MAX);
const _: () = assert!(EVENT_BYTES_MAX + ENVELOPE_BYTES_MAX <= MQTT_PACKET_BYTES_MAX);
const _: () = assert!(MQTT_ADR_PACKET_BYTES_MAX <= MQTT_PACKET_BYTES_MAX);
const _: () = assert!(GRPC_BATCH_BYTES <= GRPC_MESSAGE_BYTES_MAX);
const _: () = assert!(ADMIN_REQUEST_BYTES_MAX <= GRPC_MESSAGE_BYTES_MAX);
const _: () = assert!(EVENT_BYTES_MAX + ENVELOPE_BYTES_MAX / 2 <= FORWARDED_EVENT_BYTES_MAX);
const _: () =
    assert!(CHECKPOINT_RECORD_BYTES_MAX + EVENT_ID_BYTES_MAX < MQTT_CONTROL_PACKET_BYTES_MAX);
