//! The registry configuration chooses: the embedded one or the Azure IoT Operations one. Its
//! own file, so that `registry` (the trait and the embedded registry) and `azure` (which
//! implements the trait and mirrors into the embedded one) do not import each other.

use crate::azure::AzureRegistry;
use crate::error::Error;
use crate::registry::{FileRegistry, NewSchema, Registry, SchemaRecord, VersionId};

/// The registry chosen by configuration: the embedded one (default) or an external one.
#[derive(Debug)]
pub enum AnyRegistry {
    /// [`FileRegistry`] in the data dir.
    File(FileRegistry),
    /// The Azure IoT Operations Schema Registry over MQTT RPC.
    Azure(AzureRegistry),
}

impl Registry for AnyRegistry {
    async fn put(&self, schema: NewSchema) -> Result<SchemaRecord, Error> {
        match self {
            AnyRegistry::File(r) => r.put(schema).await,
            AnyRegistry::Azure(r) => r.put(schema).await,
        }
    }

    async fn flush(&self) {
        match self {
            AnyRegistry::File(r) => {
                r.flush().await;
            }
            AnyRegistry::Azure(r) => r.flush().await,
        }
    }

    async fn delete(&self, name: &str, version: &str) -> Result<SchemaRecord, Error> {
        match self {
            AnyRegistry::File(r) => r.delete(name, version).await,
            AnyRegistry::Azure(r) => r.delete(name, version).await,
        }
    }

    async fn get(&self, name: &str, version: Option<&str>) -> Result<SchemaRecord, Error> {
        match self {
            AnyRegistry::File(r) => r.get(name, version).await,
            AnyRegistry::Azure(r) => r.get(name, version).await,
        }
    }

    async fn list_from(
        &self,
        after: Option<&VersionId>,
        take: impl FnMut(&SchemaRecord) -> bool + Send,
    ) -> Result<(), Error> {
        match self {
            AnyRegistry::File(r) => r.list_from(after, take).await,
            AnyRegistry::Azure(r) => r.list_from(after, take).await,
        }
    }

    async fn current(&self, subject: &str) -> Result<Option<SchemaRecord>, Error> {
        match self {
            AnyRegistry::File(r) => r.current(subject).await,
            AnyRegistry::Azure(r) => r.current(subject).await,
        }
    }
}
