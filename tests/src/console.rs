//! The real `sse-console` binary on a free loopback port (where its pages need no login), pointed
//! at a running pipeline's three services.

use crate::procs::Service;
use crate::stack::Pipeline;

/// Starts `sse-console` on loopback for the services of `p`, with `args` added (e.g.
/// `--console-token-file`).
pub async fn start(p: &Pipeline, args: &[String]) -> anyhow::Result<Service> {
    let mut all = vec![
        "--ingest".to_string(),
        p.ingest.url(),
        "--schema".to_string(),
        p.schema.url(),
        "--publisher".to_string(),
        p.publisher.url(),
    ];
    all.extend(args.iter().cloned());
    Service::start_flagged("sse-console", "--console-listen", &all, &[]).await
}
