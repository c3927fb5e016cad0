//! The write API's gRPC side: each call runs the [`Store`] on the blocking pool (it reads the
//! directory, validates and fsyncs), puts and deletes behind a rate limit, and errors mapped to
//! the codes a client acts on.

use std::sync::Arc;

use sse_proto::v1 as pb;
use sse_runtime::admin_rate::TokenBucket;

use super::{Store, WriteError};

/// Default of `--resource-writes-per-second`: far above what a person or a console does, far
/// below what keeps the single-threaded ingest busy re-validating the directory.
pub const WRITES_PER_SECOND_DEFAULT: f64 = 5.0;
/// Default of `--resource-write-burst`: a console or `ssectl` applying a handful at once.
pub const WRITE_BURST_DEFAULT: u32 = 20;

/// The store behind `PutResource` / `DeleteResource` / `GetResource`, with the write rate limit.
#[derive(Debug)]
pub struct Writes {
    store: Arc<Store>,
    bucket: TokenBucket,
    per_second: f64,
    burst: u32,
}

impl Writes {
    /// `store`, its puts and deletes limited to `per_second` with bursts of `burst`.
    pub fn new(store: Store, per_second: f64, burst: u32) -> Self {
        Self {
            store: Arc::new(store),
            bucket: TokenBucket::new(per_second, burst),
            per_second,
            burst,
        }
    }

    /// `PutResource`.
    pub async fn put(
        &self,
        r: pb::PutResourceRequest,
    ) -> Result<pb::PutResourceResponse, tonic::Status> {
        self.take()?;
        let w = self
            .blocking(move |s| s.put(&r.yaml, r.only_if_absent))
            .await?;
        Ok(pb::PutResourceResponse {
            kind: w.kind,
            name: w.name,
            file: w.file.display().to_string(),
            created: w.created,
        })
    }

    /// `DeleteResource`.
    pub async fn delete(
        &self,
        r: pb::DeleteResourceRequest,
    ) -> Result<pb::DeleteResourceResponse, tonic::Status> {
        self.take()?;
        let file = self.blocking(move |s| s.delete(&r.kind, &r.name)).await?;
        Ok(pb::DeleteResourceResponse {
            file: file.display().to_string(),
        })
    }

    /// `GetResource`.
    pub async fn get(
        &self,
        r: pb::GetResourceRequest,
    ) -> Result<pb::GetResourceResponse, tonic::Status> {
        let read = self.blocking(move |s| s.get(&r.kind, &r.name)).await?;
        Ok(pb::GetResourceResponse {
            yaml: read.text,
            file: read.file.display().to_string(),
            read_only_reason: read.read_only.unwrap_or_default(),
            secrets: read
                .secrets
                .into_iter()
                .map(|s| pb::SecretStatus {
                    reference: s.reference,
                    field: s.field,
                    present: s.present,
                    unchecked_reason: s.unchecked.unwrap_or_default(),
                })
                .collect(),
        })
    }

    /// Why every write is refused here (`GetStatus` tells the console); `None`: writable.
    pub async fn read_only_reason(&self) -> Option<String> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.read_only_reason())
            .await
            .unwrap_or_else(|_| Some("the resource write task failed".to_owned()))
    }

    /// Takes a token of the write rate limit, or the refusal naming its flags.
    fn take(&self) -> Result<(), tonic::Status> {
        if self.bucket.try_take() {
            return Ok(());
        }
        let message = if self.burst == 0 {
            "resource writes are off: --resource-write-burst is 0".to_owned()
        } else {
            format!(
                "resource write rate limit: PutResource and DeleteResource share {} calls per second with bursts of {} (--resource-writes-per-second, --resource-write-burst); retry later",
                self.per_second, self.burst
            )
        };
        Err(tonic::Status::resource_exhausted(message))
    }

    /// Runs `f` on the store on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, WriteError> + Send + 'static,
    ) -> Result<T, tonic::Status> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|_| tonic::Status::internal("the resource write task failed"))?
            .map_err(status)
    }
}

/// The gRPC status of a refused write.
pub fn status(e: WriteError) -> tonic::Status {
    let message = e.to_string();
    match e {
        WriteError::Invalid(v) => bad_request(message, &v),
        WriteError::NotOurs(_) | WriteError::InUse(_) => {
            tonic::Status::failed_precondition(message)
        }
        WriteError::NotFound(_) => tonic::Status::not_found(message),
        WriteError::Exists(_) => tonic::Status::already_exists(message),
        WriteError::Io(_) => tonic::Status::internal(message),
    }
}

/// INVALID_ARGUMENT with a `google.rpc.BadRequest` detail of one field violation per problem,
/// so a form can put each next to its input; the message stays the one-line summary.
fn bad_request(message: String, violations: &[super::Violation]) -> tonic::Status {
    use tonic_types::{ErrorDetails, FieldViolation, StatusExt};
    let violations: Vec<FieldViolation> = violations
        .iter()
        .map(|v| FieldViolation::new(v.field.clone(), v.message.clone()))
        .collect();
    let details = ErrorDetails::with_bad_request(violations);
    <tonic::Status as StatusExt>::with_error_details(tonic::Code::InvalidArgument, message, details)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writes(burst: u32) -> (tempfile::TempDir, Writes) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().to_path_buf(), 1024, false);
        (dir, Writes::new(store, 0.0, burst))
    }

    fn delete() -> pb::DeleteResourceRequest {
        pb::DeleteResourceRequest {
            kind: "Device".into(),
            name: "d".into(),
        }
    }

    #[tokio::test]
    async fn writes_take_from_the_bucket_and_reads_do_not() {
        let (_dir, w) = writes(1);
        // The first write gets through (to a NOT_FOUND), the second is rate-limited.
        let first = w.delete(delete()).await.unwrap_err();
        assert_eq!(first.code(), tonic::Code::NotFound);
        let second = w.delete(delete()).await.unwrap_err();
        assert_eq!(second.code(), tonic::Code::ResourceExhausted);
        assert!(
            second.message().contains("--resource-write-burst"),
            "{second:?}"
        );
        let get = pb::GetResourceRequest {
            kind: "Device".into(),
            name: "d".into(),
        };
        assert_eq!(w.get(get).await.unwrap_err().code(), tonic::Code::NotFound);
        let (_dir, off) = writes(0);
        let s = off.delete(delete()).await.unwrap_err();
        assert!(s.message().contains("are off"), "{s:?}");
    }
}
