//! Fuzzes the checkpoint record decoder: any topic and payload (a retained message anyone may
//! publish) never panic; an accepted record is within the size limit, sits on its own stream's
//! topic, and encodes back to a record that decodes to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sse_contract::limits::CHECKPOINT_RECORD_BYTES_MAX;
use sse_ingest::checkpoint::record::{decode, topic};

fuzz_target!(|input: (String, Vec<u8>)| {
    let (t, payload) = input;
    if let Ok(r) = decode(&t, &payload) {
        assert!(payload.len() <= CHECKPOINT_RECORD_BYTES_MAX);
        let own = topic("sse-connector/checkpoint", &r.stream);
        assert_eq!(decode(&own, &r.encode()), Ok(r));
    }
});

