//! The `SchemaService` gRPC adapter: turns requests into domain calls and records into proto
//! messages. `Process` is handed to the [`Relay`].

use std::sync::Arc;

use serde_json::Value;
use sse_proto::v1::schema_service_server::SchemaService;
use sse_proto::v1::{
    DeleteSchemaRequest, DeleteSchemaResponse, GetSchemaRequest, GetSchemaResponse,
    InferSchemaRequest, InferSchemaResponse, ListSchemasRequest, ListSchemasResponse,
    ListSubjectsRequest, ListSubjectsResponse, NoSchemaCount, ProcessRequest, ProcessResponse,
    PutSchemaRequest, PutSchemaResponse, Schema, SubjectStatus,
};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::acks::{reason_to_proto, reference_to_proto};
use crate::draft07::check_document;
use crate::error::Error;
use crate::paging::{self, Page};
use crate::pipeline::{self as pl, Pipeline};
use crate::registry::{
    NewSchema, Registry, SchemaRecord, VersionId, is_safe_name, validate_new_version,
};
use crate::relay::Relay;

/// The gRPC service: the registry API and the event stream.
pub struct SchemaGrpc<R> {
    pipeline: Arc<Pipeline<R>>,
    relay: Relay<R>,
}

impl<R: Registry> SchemaGrpc<R> {
    /// The service over a pipeline (and its registry) and a relay.
    pub fn new(pipeline: Arc<Pipeline<R>>, relay: Relay<R>) -> Self {
        Self { pipeline, relay }
    }
}

/// Refuses a request text larger than an event may be: `PutSchema` and `InferSchema` take the
/// same size limit as the events on the stream.
fn within_event_limit(what: &'static str, bytes: usize) -> Result<(), Error> {
    let max = sse_contract::limits::EVENT_BYTES_MAX;
    if bytes > max {
        return Err(Error::TooLarge { what, bytes, max });
    }
    Ok(())
}

/// Refuses a schema name no registry here can hold (and would echo whole in a not-found).
fn checked_name(name: &str) -> Result<(), Status> {
    if name.is_empty() {
        return Err(Status::invalid_argument("name is required"));
    }
    if !is_safe_name(name) {
        return Err(Status::invalid_argument(format!(
            "invalid name {}: schema names are 1 to 128 letters, digits, '.', '_' or '-'",
            sse_runtime::echo::quoted(name)
        )));
    }
    Ok(())
}

/// A stored version as the API returns it, cut to fit in one message
/// ([`paging::fit_schema`]).
fn to_proto(r: SchemaRecord) -> Schema {
    // The first subject first, then the others (a version may list thousands: no quadratic
    // de-duplication).
    let first = (!r.subject.is_empty()).then(|| r.subject.clone());
    let subjects: Vec<String> = first
        .iter()
        .cloned()
        .chain(r.subjects.into_iter().filter(|s| Some(s) != first.as_ref()))
        .collect();
    let mut schema = Schema {
        name: r.name,
        version: r.version,
        namespace: r.namespace,
        format: r.format,
        content: r.content,
        subject: r.subject,
        subjects,
        truncated: false,
    };
    paging::fit_schema(&mut schema);
    schema
}

/// A subject's status as `ListSubjects` returns it.
fn subject_to_proto(s: pl::SubjectStatus) -> SubjectStatus {
    let mut out = SubjectStatus {
        subject: s.subject,
        schema: s.schema.as_ref().map(reference_to_proto),
        events_with_schema: s.with_schema,
        events_without_schema: s
            .without_schema
            .into_iter()
            .map(|(r, n)| NoSchemaCount {
                reason: reason_to_proto(r) as i32,
                count: n,
            })
            .collect(),
        ..Default::default()
    };
    if let Some(r) = s.last_reason {
        out.set_last_no_schema_reason(reason_to_proto(r));
    }
    if let Some((cap, message)) = s.frozen {
        out.set_schema_frozen_reason(cap.to_proto());
        out.schema_frozen_message = message;
    }
    out
}

#[tonic::async_trait]
impl<R: Registry> SchemaService for SchemaGrpc<R> {
    type ProcessStream = ReceiverStream<Result<ProcessResponse, Status>>;

    async fn process(
        &self,
        request: Request<Streaming<ProcessRequest>>,
    ) -> Result<Response<Self::ProcessStream>, Status> {
        Ok(Response::new(self.relay.start(request.into_inner())))
    }

    async fn put_schema(
        &self,
        request: Request<PutSchemaRequest>,
    ) -> Result<Response<PutSchemaResponse>, Status> {
        let req = request.into_inner();
        within_event_limit("content", req.content.len())?;
        let version = if req.version.is_empty() {
            "1".to_string()
        } else {
            req.version
        };
        validate_new_version(&version)?;
        let content: Value = serde_json::from_str(&req.content)
            .map_err(|e| Error::InvalidSchema(format!("content is not JSON: {e}")))?;
        check_document(&content)?;
        let schema = NewSchema::new(&content, version, "");
        // Canonical JSON may be longer than the text sent (`1e1` is `10.0`): the limit holds
        // for what is stored, so every schema put here is returned whole.
        within_event_limit("canonical content", schema.content.len())?;
        let record = self.pipeline.registry().put(schema).await?;
        // An admin write, logged as resource writes are: who changed what, when.
        tracing::info!(name = %record.name, version = %record.version, bytes = record.content.len(), "schema put");
        Ok(Response::new(PutSchemaResponse {
            schema: Some(to_proto(record)),
        }))
    }

    async fn get_schema(
        &self,
        request: Request<GetSchemaRequest>,
    ) -> Result<Response<GetSchemaResponse>, Status> {
        let req = request.into_inner();
        checked_name(&req.name)?;
        let version = (!req.version.is_empty()).then_some(req.version.as_str());
        let record = self.pipeline.registry().get(&req.name, version).await?;
        Ok(Response::new(GetSchemaResponse {
            schema: Some(to_proto(record)),
        }))
    }

    async fn delete_schema(
        &self,
        request: Request<DeleteSchemaRequest>,
    ) -> Result<Response<DeleteSchemaResponse>, Status> {
        let req = request.into_inner();
        checked_name(&req.name)?;
        crate::registry::validate_version(&req.version)?;
        let record = self
            .pipeline
            .registry()
            .delete(&req.name, &req.version)
            .await?;
        // An admin write, logged as resource writes are: who changed what, when.
        tracing::info!(name = %record.name, version = %record.version, bytes = record.content.len(), "schema deleted");
        Ok(Response::new(DeleteSchemaResponse {
            schema: Some(to_proto(record)),
        }))
    }

    async fn list_schemas(
        &self,
        request: Request<ListSchemasRequest>,
    ) -> Result<Response<ListSchemasResponse>, Status> {
        let req = request.into_inner();
        let mut page = Page::new(paging::page_size(req.page_size)?);
        let after = paging::schemas_after(&req.page_token)?;
        self.pipeline
            .registry()
            .list_from(after.as_ref(), |r| page.offer(to_proto(r.clone())))
            .await?;
        let (schemas, more) = page.finish();
        let next_page_token = match schemas.last() {
            Some(s) if more => paging::schemas_token(&VersionId::new(&*s.name, &*s.version)),
            _ => String::new(),
        };
        Ok(Response::new(ListSchemasResponse {
            schemas,
            next_page_token,
        }))
    }

    async fn infer_schema(
        &self,
        request: Request<InferSchemaRequest>,
    ) -> Result<Response<InferSchemaResponse>, Status> {
        let payload = request.into_inner().payload;
        within_event_limit("payload", payload.len())?;
        let inferred = self.pipeline.infer_checked(payload.as_bytes())?;
        Ok(Response::new(InferSchemaResponse {
            content: inferred.content,
            name: inferred.name,
        }))
    }

    async fn list_subjects(
        &self,
        request: Request<ListSubjectsRequest>,
    ) -> Result<Response<ListSubjectsResponse>, Status> {
        let req = request.into_inner();
        let size = paging::page_size(req.page_size)?;
        let after = paging::subjects_after(&req.page_token)?;
        // One more than the page holds, to know whether another page follows.
        let statuses = self
            .pipeline
            .subjects_after(after.as_deref(), size + 1)
            .await;
        let mut page = Page::new(size);
        for s in statuses {
            if !page.offer(subject_to_proto(s)) {
                break;
            }
        }
        let (subjects, more) = page.finish();
        let next_page_token = match subjects.last() {
            Some(s) if more => paging::subjects_token(&s.subject),
            _ => String::new(),
        };
        Ok(Response::new(ListSubjectsResponse {
            subjects,
            next_page_token,
        }))
    }
}
