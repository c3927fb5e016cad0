//! The last version of each resource file that read and parsed cleanly. A file caught while
//! being written (a slow copy, a tool that writes in steps longer than the reload's debounce)
//! or broken by an edit would otherwise lose every resource past the damage, and their streams
//! would close until the file is whole again; with this, the file goes on serving what it last
//! said, and its errors say so.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// What a damaged file's errors add: the resources in force did not change.
pub const SERVING_LAST_GOOD: &str = "the file's last version that parsed is served until it does";

/// The last clean text of each resource file, by file name; one per directory followed.
#[derive(Debug, Default)]
pub struct LastGood {
    texts: Mutex<HashMap<String, String>>,
}

impl LastGood {
    /// Remembers `text` as the last clean version of `file`.
    pub(super) fn keep(&self, file: &str, text: &str) {
        let mut texts = self.texts.lock().unwrap_or_else(|p| p.into_inner());
        match texts.get_mut(file) {
            Some(t) if t == text => {}
            Some(t) => text.clone_into(t),
            None => {
                texts.insert(file.to_string(), text.to_string());
            }
        }
    }

    /// The last clean version of `file`, if it had one.
    pub(super) fn get(&self, file: &str) -> Option<String> {
        let texts = self.texts.lock().unwrap_or_else(|p| p.into_inner());
        texts.get(file).cloned()
    }

    /// Forgets the files no longer in the directory: a file deleted and made again later starts
    /// afresh.
    pub(super) fn retain(&self, files: &[String]) {
        let present: HashSet<&str> = files.iter().map(String::as_str).collect();
        let mut texts = self.texts.lock().unwrap_or_else(|p| p.into_inner());
        texts.retain(|f, _| present.contains(f.as_str()));
    }
}
