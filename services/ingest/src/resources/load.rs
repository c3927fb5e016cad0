//! Loading resources: YAML texts, or every resource file of a directory, each read within its
//! size limit, then parsed and validated.

use std::path::Path;

use sse_contract::resources::RESOURCE_FILE_BYTES_DEFAULT;

use super::last_good::{LastGood, SERVING_LAST_GOOD};
use super::{ResourceError, Resources, doc, validate};
use crate::error::Error;

/// Loads and validates resources from YAML texts, each with the file name it came from.
pub fn load_texts<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> Resources {
    let mut raws = Vec::new();
    let mut errors = Vec::new();
    for (file, text) in files {
        doc::parse_file(text, file, &mut raws, &mut errors);
    }
    validate::validate(raws, errors)
}

/// Loads every `*.yaml` / `*.yml` file of `dir` (sorted by name, so results are stable), each
/// of at most [`RESOURCE_FILE_BYTES_DEFAULT`] bytes.
pub fn load_dir(dir: &Path) -> Result<Resources, Error> {
    load_dir_limited(dir, RESOURCE_FILE_BYTES_DEFAULT, &LastGood::default())
}

/// Why a bounded read of a file failed.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// Opening or reading failed.
    Io(std::io::Error),
    /// The file has more than the limit's bytes.
    TooLarge,
    /// The file is not UTF-8 text.
    NotUtf8(std::string::FromUtf8Error),
}

/// Reads a text file of at most `max` bytes (never more, whatever it grows to meanwhile).
pub(crate) fn read_bounded(path: &Path, max: usize) -> Result<String, ReadError> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(ReadError::Io)?;
    let mut bytes = Vec::new();
    let cap = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    file.take(cap)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() > max {
        return Err(ReadError::TooLarge);
    }
    String::from_utf8(bytes).map_err(ReadError::NotUtf8)
}

/// Reads one resource file of at most `max` bytes, the error naming the limit's flag.
pub(crate) fn read_limited(path: &Path, max: usize) -> Result<String, String> {
    read_bounded(path, max).map_err(|e| match e {
        ReadError::Io(e) => format!("cannot read: {e}"),
        ReadError::TooLarge => {
            format!("the file is larger than {max} bytes (--max-resource-file-bytes): not read")
        }
        ReadError::NotUtf8(e) => format!("cannot read: not UTF-8: {e}"),
    })
}

/// [`load_dir`] with files of more than `max_file_bytes` refused (each reported as an error),
/// and a file that cannot be read or parsed served as its version in `last_good`, if any.
pub fn load_dir_limited(
    dir: &Path,
    max_file_bytes: usize,
    last_good: &LastGood,
) -> Result<Resources, Error> {
    let files = yaml_files(dir)?;
    let mut raws = Vec::new();
    // Problems of whole files come first, then those of documents and resources.
    let mut file_errors = Vec::new();
    let mut errors = Vec::new();
    for file in &files {
        let (mut file_raws, mut problems, unreadable) =
            match read_limited(Path::new(file), max_file_bytes) {
                Ok(text) => {
                    let (r, e) = doc::parse_one(&text, file);
                    if e.is_empty() {
                        last_good.keep(file, &text);
                    }
                    (r, e, false)
                }
                Err(message) => (Vec::new(), vec![file_error(file, message)], true),
            };
        if !problems.is_empty()
            && let Some(text) = last_good.get(file)
        {
            file_raws = doc::parse_one(&text, file).0;
            for e in &mut problems {
                e.message = format!("{}; {SERVING_LAST_GOOD}", e.message);
            }
        }
        raws.append(&mut file_raws);
        if unreadable {
            file_errors.append(&mut problems);
        } else {
            errors.append(&mut problems);
        }
    }
    last_good.retain(&files);
    let mut res = validate::validate(raws, errors);
    file_errors.append(&mut res.errors);
    res.errors = file_errors;
    Ok(res)
}

/// A problem with a whole file (unreadable, too large).
fn file_error(file: &str, message: String) -> ResourceError {
    ResourceError {
        resource: "file".into(),
        file: file.to_string(),
        message,
    }
}

/// The `*.yaml` / `*.yml` files of `dir`, sorted by name.
fn yaml_files(dir: &Path) -> Result<Vec<String>, Error> {
    let dir_err = |e: std::io::Error| Error::ResourcesDir {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    };
    // "Does not exist" only when it does not: a file in its place, or a parent the service may
    // not search, is named as what it is.
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::ResourcesDirMissing(dir.to_path_buf()));
        }
        Err(e) => return Err(dir_err(e)),
        Ok(m) if !m.is_dir() => return Err(dir_err(std::io::Error::other("not a directory"))),
        Ok(_) => {}
    }
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(dir_err)? {
        let path = entry.map_err(dir_err)?.path();
        let yaml = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e == "yaml" || e == "yml");
        if yaml && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths.iter().map(|p| p.display().to_string()).collect())
}
