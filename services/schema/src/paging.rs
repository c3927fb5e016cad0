//! Paging of the list calls, `ListSchemas` and `ListSubjects`, as Google's AIP-158 describes it:
//! a client asks for at most `page_size` items and passes each page's `next_page_token` back
//! until it comes back empty.
//!
//! Both lists are ordered by a key (a schema version's [`VersionId`], a subject's name), and a
//! token holds the key of the last item of its page: the next page is the items after it. So
//! paging keeps no state on the server, outlives a restart, and an item registered meanwhile is
//! returned once if it sorts after the page being read (never twice). A token is the hex of a
//! tag naming its list and the key. It is checked, length first, before anything is looked up,
//! so a forged one costs a bounded decode and one range lookup; it can only point at a place in
//! the list, so it shows nothing a client could not list from the start.
//!
//! A page is cut by count and by encoded size: it ends before its items pass
//! [`PAGE_BYTES_MAX`], far below the services' gRPC message limit
//! ([`GRPC_MESSAGE_BYTES_MAX`]) and the 4 MiB default of other gRPC clients. Its first item is
//! taken whatever its size, so a schema larger than a page comes alone; [`fit_schema`] keeps any
//! schema small enough for that page, with its token, to fit in one message.

use prost::Message;
use sse_contract::limits::{EVENT_BYTES_MAX, GRPC_MESSAGE_BYTES_MAX};
use sse_contract::mqtt_text::STRING_BYTES_MAX;
use sse_proto::v1::Schema;

use crate::error::Error;
use crate::registry::{VersionId, is_safe_name, validate_version};

/// Items a page holds when the request's `page_size` is 0 (unset).
pub const PAGE_SIZE_DEFAULT: usize = 100;

/// Most items a page holds: a larger `page_size` is taken as this (AIP-158 coerces, it does
/// not refuse).
pub const PAGE_SIZE_MAX: usize = 1000;

/// Encoded bytes of a page's items past which no further item is added (the first is always
/// taken): a full page is far below the 4 MiB default message limit of gRPC clients.
pub const PAGE_BYTES_MAX: usize = 1024 * 1024;

/// Longest subject `ListSubjects` lists: three names (asset, group, event) of at most the
/// 65,535 bytes ingest checks each name against, and their two `/`. A longer one (never from
/// this connector's ingest) is left out: no page token could name it.
pub const SUBJECT_BYTES_MAX: usize = 3 * STRING_BYTES_MAX + 2;

/// Longest `page_token` taken (hex of a tag and the longest key, a subject); a longer one is
/// INVALID_ARGUMENT before it is decoded.
pub const PAGE_TOKEN_BYTES_MAX: usize = 2 * (TAG_BYTES + SUBJECT_BYTES_MAX);

/// Largest schema version returned, encoded (`Schema.truncated` past it): a page of it alone,
/// with its token and framing, fits in one gRPC message.
pub const SCHEMA_BYTES_MAX: usize = GRPC_MESSAGE_BYTES_MAX - 4 * 1024;

/// Room a schema of `PutSchema` needs besides its content: name, version, namespace (128 bytes
/// each at most), format, a subject and framing.
const SCHEMA_FIELDS_BYTES: usize = 2 * 1024;

/// Longest `ListSchemas` token: hex of the tag, a name (128 bytes), a separator and a version
/// (64 bytes).
const SCHEMAS_TOKEN_BYTES_MAX: usize = 2 * (TAG_BYTES + 128 + 1 + 64);

/// Bytes of a token's tag.
const TAG_BYTES: usize = 3;
/// Tag of a `ListSchemas` token (its format's version in the digit).
const SCHEMAS_TAG: &[u8; TAG_BYTES] = b"S1\n";
/// Tag of a `ListSubjects` token.
const SUBJECTS_TAG: &[u8; TAG_BYTES] = b"J1\n";

// A page, or one schema alone, with its token and framing, fits in one message; a schema
// `PutSchema` accepts (at most EVENT_BYTES_MAX of canonical content) is never cut.
const _: () = assert!(PAGE_BYTES_MAX + PAGE_TOKEN_BYTES_MAX + 64 <= GRPC_MESSAGE_BYTES_MAX);
const _: () = assert!(SCHEMA_BYTES_MAX + SCHEMAS_TOKEN_BYTES_MAX + 64 <= GRPC_MESSAGE_BYTES_MAX);
const _: () = assert!(EVENT_BYTES_MAX + SCHEMA_FIELDS_BYTES <= SCHEMA_BYTES_MAX);

/// The page size a request's `page_size` asks for: 0 is [`PAGE_SIZE_DEFAULT`], above
/// [`PAGE_SIZE_MAX`] is the maximum, negative is refused.
pub fn page_size(requested: i32) -> Result<usize, Error> {
    match usize::try_from(requested) {
        Err(_) => Err(Error::InvalidPage {
            field: "page_size",
            reason: format!("{requested} is negative (0 asks for the default)"),
        }),
        Ok(0) => Ok(PAGE_SIZE_DEFAULT),
        Ok(n) => Ok(n.min(PAGE_SIZE_MAX)),
    }
}

/// The items of one page, cut by count and by encoded size.
#[derive(Debug)]
pub struct Page<T> {
    items: Vec<T>,
    size: usize,
    bytes: usize,
    more: bool,
}

impl<T: Message> Page<T> {
    /// An empty page of at most `size` items.
    pub fn new(size: usize) -> Self {
        Self {
            items: Vec::new(),
            size,
            bytes: 0,
            more: false,
        }
    }

    /// Takes `item` if the page has room for it: the first always, then while the page stays
    /// within its size and [`PAGE_BYTES_MAX`]. When it has not, the item is left for the next
    /// page, the page is marked as followed by more, and `false` is returned.
    pub fn offer(&mut self, item: T) -> bool {
        // As a repeated field 1 of the response: tag, length, message.
        let bytes = prost::encoding::message::encoded_len(1, &item);
        let fits = self.items.len() < self.size && self.bytes + bytes <= PAGE_BYTES_MAX;
        if !self.items.is_empty() && !fits {
            self.more = true;
            return false;
        }
        self.bytes += bytes;
        self.items.push(item);
        true
    }

    /// The page's items, and whether more follow it.
    pub fn finish(self) -> (Vec<T>, bool) {
        (self.items, self.more)
    }
}

/// Reads a list call's pages from the first, following `next_page_token`, at most
/// `max_pages` of them: the items, and whether that was the whole list. `call` takes a page
/// token and answers a page's items and the next token. A token that comes back unchanged ends
/// the list, so a server that does not move on cannot keep a reader looping.
pub async fn read_pages<T, E, F, Fut>(max_pages: usize, mut call: F) -> Result<(Vec<T>, bool), E>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, String), E>>,
{
    let mut items = Vec::new();
    let mut token = String::new();
    for _ in 0..max_pages {
        let (page, next) = call(token.clone()).await?;
        items.extend(page);
        if next.is_empty() || next == token {
            return Ok((items, true));
        }
        token = next;
    }
    Ok((items, false))
}

/// Cuts `s` to [`SCHEMA_BYTES_MAX`] encoded, setting `truncated`: first `subjects` down to the
/// first subject, then, if that is not enough, the content.
pub fn fit_schema(s: &mut Schema) {
    if s.encoded_len() <= SCHEMA_BYTES_MAX {
        return;
    }
    s.truncated = true;
    s.subjects.truncate(1);
    if s.encoded_len() > SCHEMA_BYTES_MAX {
        s.content.clear();
    }
}

/// The token of the `ListSchemas` page after the version `last`.
pub fn schemas_token(last: &VersionId) -> String {
    let mut raw = SCHEMAS_TAG.to_vec();
    raw.extend_from_slice(last.name.as_bytes());
    raw.push(b'\n');
    raw.extend_from_slice(last.version.as_bytes());
    hex::encode(&raw)
}

/// The version a `ListSchemas` `page_token` continues after; `None` for the first page.
pub fn schemas_after(token: &str) -> Result<Option<VersionId>, Error> {
    let Some(key) = untag(token, SCHEMAS_TAG)? else {
        return Ok(None);
    };
    let (name, version) = key.split_once('\n').ok_or_else(not_ours)?;
    if !is_safe_name(name) || validate_version(version).is_err() {
        return Err(not_ours());
    }
    Ok(Some(VersionId::new(name, version)))
}

/// The token of the `ListSubjects` page after the subject `last`.
pub fn subjects_token(last: &str) -> String {
    let mut raw = SUBJECTS_TAG.to_vec();
    raw.extend_from_slice(last.as_bytes());
    hex::encode(&raw)
}

/// The subject a `ListSubjects` `page_token` continues after; `None` for the first page.
pub fn subjects_after(token: &str) -> Result<Option<String>, Error> {
    match untag(token, SUBJECTS_TAG)? {
        Some(s) if s.is_empty() || s.len() > SUBJECT_BYTES_MAX => Err(not_ours()),
        other => Ok(other),
    }
}

/// The key a token of the list tagged `tag` holds; `None` for an empty token.
fn untag(token: &str, tag: &[u8; TAG_BYTES]) -> Result<Option<String>, Error> {
    if token.is_empty() {
        return Ok(None);
    }
    if token.len() > PAGE_TOKEN_BYTES_MAX {
        return Err(Error::InvalidPage {
            field: "page_token",
            reason: format!(
                "{} bytes, longer than any token ({PAGE_TOKEN_BYTES_MAX})",
                token.len()
            ),
        });
    }
    let raw = hex::decode(token).map_err(|_| not_ours())?;
    let key = raw.strip_prefix(tag.as_slice()).ok_or_else(not_ours)?;
    String::from_utf8(key.to_vec())
        .map(Some)
        .map_err(|_| not_ours())
}

/// The refusal of a token this call did not make.
fn not_ours() -> Error {
    Error::InvalidPage {
        field: "page_token",
        reason: "not a next_page_token of this call (start again with an empty one)".into(),
    }
}

#[cfg(test)]
mod tests;
