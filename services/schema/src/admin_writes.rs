//! The guard in front of the registry's admin writes, `PutSchema`, `DeleteSchema` and
//! `InferSchema`: each call takes a token from the [rate limit](sse_runtime::admin_rate), and a
//! request larger than [`ADMIN_REQUEST_BYTES_MAX`] is refused from its gRPC frame header. Both
//! run before tonic decodes the body, so a refused call costs no memory (a 42 MB `InferSchema`
//! once took the schema pod 923 MiB). Every other method, the `Process` stream included, passes
//! untouched.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::StreamExt as _;
use http_body_util::{BodyExt as _, BodyStream, StreamBody};
use sse_contract::limits::{ADMIN_REQUEST_BYTES_MAX, EVENT_BYTES_MAX};
use tonic::body::Body;
use tonic::server::NamedService;

use sse_runtime::admin_rate::TokenBucket;

/// The guarded methods (gRPC paths).
pub const GUARDED_PATHS: [&str; 3] = [
    "/sseconnector.v1.SchemaService/PutSchema",
    "/sseconnector.v1.SchemaService/InferSchema",
    "/sseconnector.v1.SchemaService/DeleteSchema",
];

/// The gRPC message prefix: a compression flag and the message's length (4 bytes, big endian).
const PREFIX_BYTES: usize = 5;

/// Wraps the schema service's routes with the admin write guard.
#[derive(Debug, Clone)]
pub struct AdminWrites<S> {
    inner: S,
    bucket: Arc<TokenBucket>,
}

impl<S> AdminWrites<S> {
    /// `inner` behind `bucket` and the size check.
    pub fn new(inner: S, bucket: Arc<TokenBucket>) -> Self {
        Self { inner, bucket }
    }
}

impl<S: NamedService> NamedService for AdminWrites<S> {
    const NAME: &'static str = S::NAME;
}

/// The wrapped service's future, boxed: a refusal is a different future type.
type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, Infallible>> + Send>>;

impl<S> tower_service::Service<http::Request<Body>> for AdminWrites<S>
where
    S: tower_service::Service<
            http::Request<Body>,
            Response = http::Response<Body>,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let path = req.uri().path();
        let Some(method) = GUARDED_PATHS
            .contains(&path)
            .then(|| path.rsplit('/').next().unwrap_or_default().to_owned())
        else {
            return Box::pin(self.inner.call(req));
        };
        if !self.bucket.try_take() {
            tracing::debug!(method, "admin write refused: rate limit");
            return Box::pin(std::future::ready(Ok(self.bucket.refusal().into_http())));
        }
        // The service that was made ready serves this call; its clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            match within_size(&method, body).await {
                Ok(body) => inner.call(http::Request::from_parts(parts, body)).await,
                Err(status) => Ok(status.into_http()),
            }
        })
    }
}

/// Reads the body up to its first message's length prefix and refuses a message larger than
/// [`ADMIN_REQUEST_BYTES_MAX`]; otherwise returns the body as it was, nothing lost.
async fn within_size(method: &str, mut body: Body) -> Result<Body, tonic::Status> {
    let mut head = Vec::new();
    let mut prefix = [0u8; PREFIX_BYTES];
    let mut have = 0;
    while have < PREFIX_BYTES {
        let Some(frame) = body.frame().await else {
            break;
        };
        if let Ok(data) = frame.as_ref().map(|f| f.data_ref()) {
            let Some(data) = data else {
                head.push(frame);
                break; // trailers: the body is over
            };
            let n = (PREFIX_BYTES - have).min(data.len());
            prefix[have..have + n].copy_from_slice(&data[..n]);
            have += n;
            head.push(frame);
        } else {
            head.push(frame);
            break; // tonic reports the body's error
        }
    }
    if have == PREFIX_BYTES {
        let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]);
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > ADMIN_REQUEST_BYTES_MAX {
            return Err(tonic::Status::invalid_argument(format!(
                "{method} request is {len} bytes, over the event size limit of {EVENT_BYTES_MAX} bytes ({ADMIN_REQUEST_BYTES_MAX} with its other fields): not read"
            )));
        }
    }
    let rest = futures::stream::iter(head).chain(BodyStream::new(body));
    Ok(Body::new(StreamBody::new(rest)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_the_generated_methods() {
        let name = sse_proto::v1::schema_service_server::SERVICE_NAME;
        assert_eq!(GUARDED_PATHS[0], format!("/{name}/PutSchema"));
        assert_eq!(GUARDED_PATHS[1], format!("/{name}/InferSchema"));
        assert_eq!(GUARDED_PATHS[2], format!("/{name}/DeleteSchema"));
    }

    /// A body of `chunks` (each non-empty), one data frame each, as the transport delivers it.
    async fn body_of(chunks: &[&[u8]]) -> Body {
        let mut frames = Vec::new();
        for c in chunks {
            let mut full = http_body_util::Full::new(bytes::Bytes::copy_from_slice(c));
            let frame = full.frame().await.unwrap().unwrap();
            frames.push(Ok::<_, tonic::Status>(frame));
        }
        Body::new(StreamBody::new(futures::stream::iter(frames)))
    }

    async fn collect(body: Body) -> Vec<u8> {
        body.collect().await.unwrap().to_bytes().to_vec()
    }

    #[tokio::test]
    async fn a_message_within_the_limit_passes_whole_however_it_is_split() {
        let len = u32::try_from(ADMIN_REQUEST_BYTES_MAX)
            .unwrap()
            .to_be_bytes();
        let message = [&[0u8][..], &len, b"payload"].concat();
        for split in [1, 3, 5, 6] {
            let (a, b) = message.split_at(split);
            let body = within_size("InferSchema", body_of(&[a, b]).await)
                .await
                .unwrap();
            assert_eq!(collect(body).await, message, "split at {split}");
        }
        let empty = within_size("InferSchema", body_of(&[]).await)
            .await
            .unwrap();
        assert!(collect(empty).await.is_empty());
    }

    #[tokio::test]
    async fn a_larger_message_is_refused_from_its_prefix() {
        let len = u32::try_from(ADMIN_REQUEST_BYTES_MAX + 1)
            .unwrap()
            .to_be_bytes();
        let e = within_size("PutSchema", body_of(&[&[0], &len[..2], &len[2..]]).await)
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(
            e.message().starts_with("PutSchema request is ")
                && e.message().contains("over the event size limit"),
            "{e:?}"
        );
    }
}
