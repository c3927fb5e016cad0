//! The console inside `sse-connector` (`--console-listen`): the same pages as `sse-console`,
//! calling the three services of this process in-process (their servers, not their sockets),
//! so it needs no gRPC identity of its own and adds no connection.

use std::net::SocketAddr;

use sse_runtime::link::{Local, Locals};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::Error;

/// The console bound to its address, waiting for the services.
pub struct Console {
    listener: TcpListener,
    args: sse_console::ConsoleArgs,
    access: sse_console::AccessSettings,
    /// Where ingest, schema and publisher listen, in that order.
    at: [SocketAddr; 3],
}

/// Binds the console when `--console-listen` is given and its flags were checked (`access`;
/// `None` otherwise), printing `sse-connector console listening on <addr>`.
pub async fn bind(
    args: sse_console::ConsoleArgs,
    access: Option<sse_console::AccessSettings>,
    at: [SocketAddr; 3],
) -> Result<Option<Console>, Error> {
    let (Some(addr), Some(access)) = (args.console_listen, access) else {
        return Ok(None);
    };
    let listener = sse_runtime::bind(addr, "sse-connector console")
        .await
        .map_err(|source| Error::Bind {
            part: "sse-console",
            addr,
            source,
        })?;
    Ok(Some(Console {
        listener,
        args,
        access,
        at,
    }))
}

impl Console {
    /// Serves once ingest has handed over its server (`ingest`), with `servers` (schema's and
    /// the publisher's), until `stop`. Ingest ending before that ends the console quietly.
    pub async fn run(
        self,
        ingest: oneshot::Receiver<Local>,
        servers: [Local; 2],
        stop: CancellationToken,
    ) -> Result<(), Error> {
        let ingest = tokio::select! {
            local = ingest => match local { Ok(l) => l, Err(_) => return Ok(()) },
            () = stop.cancelled() => return Ok(()),
        };
        let [schema, publisher] = servers;
        let [i, s, p] = self.at;
        let locals = Locals::default()
            .with(i, ingest)
            .with(s, schema)
            .with(p, publisher);
        let services = sse_console::Services {
            ingest: format!("http://{i}"),
            schema: format!("http://{s}"),
            publisher: format!("http://{p}"),
            // Every call stays in this process: no identity is presented to anyone.
            mtls: None,
            locals,
        };
        let checked = sse_console::Checked {
            args: self.args,
            access: self.access,
            targets: services.targets().map_err(sse_console::Error::from)?,
        };
        sse_console::serve(self.listener, checked, services, stop).await?;
        Ok(())
    }
}
