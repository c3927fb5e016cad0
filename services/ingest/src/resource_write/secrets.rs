//! Which secrets a Device names and whether their files exist: the console shows "file present"
//! or "file missing" next to each reference so an operator sees a typo before the stream fails.
//! Only metadata: a file's content is never read, and a reference the `--secret-access`
//! allow-list does not permit to the device is not even looked up (that would tell whoever
//! edits resources which secrets exist).

use std::path::PathBuf;
use std::sync::Arc;

use crate::resources;
use crate::secret_access::{self, AccessFile};

/// One referenced secret and what is known about its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretStatus {
    /// `<secret>/<key>`.
    pub reference: String,
    /// The field naming it (a path into the document).
    pub field: String,
    /// Whether the file exists (false when unchecked).
    pub present: bool,
    /// Why it was not checked; `None` when it was.
    pub unchecked: Option<String>,
}

/// Where secrets live and who may use which.
#[derive(Debug, Clone)]
pub struct Secrets {
    /// `--secrets-dir`; `None`: secrets are not read from files here.
    pub dir: Option<PathBuf>,
    /// The `--secret-access` allow-list.
    pub access: Arc<AccessFile>,
}

impl Secrets {
    /// The secrets the device defined in `text` references, each with its file's presence.
    /// Anything but a valid Device yields none.
    pub fn statuses(&self, text: &str) -> Vec<SecretStatus> {
        let res = resources::load_texts([("resource.yaml", text)]);
        let Some(device) = res.devices.values().next() else {
            return Vec::new();
        };
        let access = self.access.refresh();
        let mut out = Vec::new();
        for (ep, e) in &device.endpoints {
            let at = format!("spec.endpoints.inbound.{ep}");
            let auth = secret_access::secret_refs(&e.auth)
                .into_iter()
                .map(|(f, r)| (format!("{at}.authentication.{f}"), r));
            let options = e
                .options
                .secret_refs()
                .into_iter()
                .map(|(f, r)| (format!("{at}.additionalConfiguration.{f}"), r));
            for (field, r) in auth.chain(options) {
                let allowed = access
                    .as_ref()
                    .is_none_or(|a| a.allows(&device.name, &r.secret));
                let unchecked = if !allowed {
                    Some(format!(
                        "secret {:?} is not allowed for device {:?} by the --secret-access file",
                        r.secret, device.name
                    ))
                } else if self.dir.is_none() {
                    Some("no --secrets-dir: secrets are not read from files".to_owned())
                } else {
                    None
                };
                let present = unchecked.is_none()
                    && self
                        .dir
                        .as_ref()
                        .is_some_and(|d| d.join(&r.secret).join(&r.key).is_file());
                out.push(SecretStatus {
                    reference: format!("{}/{}", r.secret, r.key),
                    field,
                    present,
                    unchecked,
                });
            }
        }
        out
    }
}
