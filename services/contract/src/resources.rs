//! Limits on the Device and Asset resource files ingest reads, so that a hostile or broken file
//! (huge, or a YAML alias bomb) costs a reload bounded memory and time and fails alone.

/// One mebibyte.
const MIB: usize = 1024 * 1024;

/// Default for the largest resource file ingest reads (`--max-resource-file-bytes`). A larger
/// file is not read: it is reported as an error naming it, and the other files load. 16 MiB
/// holds tens of thousands of assets, far beyond one Kubernetes object (1 MiB).
pub const RESOURCE_FILE_BYTES_DEFAULT: usize = 16 * MIB;

/// YAML nodes (scalars, sequences, mappings) a resource document may expand to per byte of its
/// text. Without aliases a document has fewer nodes than bytes; aliases may repeat a part a few
/// times, but an alias bomb ("billion laughs") expanding further is refused before it is built.
pub const RESOURCE_NODES_PER_BYTE: usize = 4;

/// Nodes any resource document may expand to whatever its size, so that short documents can
/// still reuse an anchor a few times.
pub const RESOURCE_NODES_MIN: usize = 4096;

const _: () = assert!(RESOURCE_NODES_PER_BYTE >= 1);
