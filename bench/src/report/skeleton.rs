//! Each three-process form against the skeleton of the same transport (issue #25): the pairs,
//! their CPU ratios and the report's block about them.

use std::fmt::Write;

use serde::Serialize;

use super::Scenario;
use crate::contender::Kind;

/// How far a three-process form is from the skeleton of the same transport, at most: issue
/// #25's target for the CPU per event.
pub const SKELETON_RATIO_MAX: f64 = 1.3;

/// The pairs compared like with like: each three-process form and the skeleton over the same
/// transport (plaintext, mTLS).
const SKELETON_PAIRS: [(Kind, Kind); 2] = [
    (Kind::Pipeline, Kind::Skeleton),
    (Kind::Mtls, Kind::SkeletonMtls),
];

/// One form's median CPU per event against its skeleton's, in the same scenario.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SkeletonRatio {
    /// The three-process form.
    pub contender: Kind,
    /// The skeleton over the same transport.
    pub skeleton: Kind,
    /// The form's median CPU per event, µs.
    pub contender_us: f64,
    /// The skeleton's, µs.
    pub skeleton_us: f64,
    /// `contender_us / skeleton_us`.
    pub ratio: f64,
}

impl SkeletonRatio {
    /// "pipeline / skeleton".
    pub fn name(&self) -> String {
        format!("{} / {}", self.contender.name(), self.skeleton.name())
    }

    /// Whether the form is within [`SKELETON_RATIO_MAX`] of its skeleton.
    pub fn met(&self) -> bool {
        self.ratio <= SKELETON_RATIO_MAX
    }
}

/// The ratios of the pairs of `sc` that both ran with a CPU per event (the skeleton's above 0).
pub fn skeleton_ratios(sc: &Scenario) -> Vec<SkeletonRatio> {
    let cpu = |k| sc.get(k).and_then(|s| s.cpu_us_per_event);
    SKELETON_PAIRS
        .into_iter()
        .filter_map(|(contender, skeleton)| {
            let (contender_us, skeleton_us) = (cpu(contender)?, cpu(skeleton)?);
            (skeleton_us > 0.0).then(|| SkeletonRatio {
                contender,
                skeleton,
                contender_us,
                skeleton_us,
                ratio: contender_us / skeleton_us,
            })
        })
        .collect()
}

/// The latency scenario's "CPU per event against the skeleton" block: one line per pair that
/// ran, nothing when none did.
pub(super) fn skeleton_md(s: &mut String, ratios: &[SkeletonRatio]) {
    if ratios.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "CPU per event against the skeleton (scenario 2, medians; issue #25: within \
         {SKELETON_RATIO_MAX}× of the skeleton of the same transport):\n"
    );
    for r in ratios {
        let _ = writeln!(
            s,
            "- {}: **{:.2}×** ({:.1} µs / {:.1} µs)",
            r.name(),
            r.ratio,
            r.contender_us,
            r.skeleton_us
        );
    }
    s.push('\n');
}
