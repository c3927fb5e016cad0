//! Device and Asset resources (the Azure Device Registry model): YAML loading, validation, and
//! the validated domain model the rest of ingest works from.
//!
//! [`model`] holds the domain types, [`doc`] the YAML documents as written, [`validate`] their
//! validation into the model, [`load`] the reading of files and directories, [`last_good`] the
//! version of each file served while it is damaged.

pub mod asset_options;
mod doc;
mod from_adr;
mod identify;
mod last_good;
mod load;
mod model;
pub mod options;
mod validate;
pub(crate) mod yaml;

pub use doc::API_VERSION;
pub use from_adr::{AdrResource, adr_source_name, load_adr};
pub use identify::{assets_using, defined, identify};
pub use last_good::{LastGood, SERVING_LAST_GOOD};
pub(crate) use load::{ReadError, read_bounded, read_limited};
pub use load::{load_dir, load_dir_limited, load_texts};
pub use model::{
    Asset, AssetEvent, Auth, Dataset, Destination, Device, Endpoint, EventGroup, MqttDestination,
    Qos, Rejected, ResourceError, Resources, SecretRef,
};
pub use validate::{is_sse_endpoint_type, validate_topic};

#[cfg(test)]
mod tests;
