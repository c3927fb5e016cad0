//! Compiles `sseconnector/v1/*.proto` with protox (no system protoc) into tonic clients and servers.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "sseconnector/v1/event.proto",
        "sseconnector/v1/ingest.proto",
        "sseconnector/v1/schema.proto",
        "sseconnector/v1/publisher.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["."])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("sseconnector_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .bytes(".sseconnector.v1.Event.data")
        .bytes(".sseconnector.v1.TailMessage.payload")
        .compile_fds(fds)?;
    Ok(())
}
