//! Fuzzes the resource loader: any bytes, read as a resources file, load without a panic and
//! within libFuzzer's memory limit (alias bombs, deep nesting), and everything served is
//! consistent: each asset's device and endpoint exist, and planning its streams works.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sse_ingest::resources::load_texts;
use sse_ingest::routing::plan;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let r = load_texts([("fuzz.yaml", text.as_ref())]);
    for a in &r.assets {
        let device = &r.devices[&a.device];
        assert!(device.endpoints.contains_key(&a.endpoint));
    }
    let plans = plan(&r);
    let routes: usize = plans
        .iter()
        .map(|p| p.datasets.len() + p.groups.iter().map(|g| g.events.len()).sum::<usize>())
        .sum();
    let served: usize = r
        .assets
        .iter()
        .map(|a| a.datasets.len() + a.event_groups.iter().map(|g| g.events.len()).sum::<usize>())
        .sum();
    assert!(routes <= served);
});
