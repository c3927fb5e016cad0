//! House rules on the tree: no non-test function over `FUNCTION_LINES_MAX` lines in the crates
//! listed here (issue #21: long functions hide bugs; a `select!` loop's arms become methods).

#![allow(clippy::unwrap_used, missing_docs)]

use sse_e2e::house::{FUNCTION_LINES_MAX, functions, repo_root};

/// The source trees held to the rule.
const CHECKED: &[&str] = &[
    "services/contract/src",
    "services/runtime/src",
    "services/ingest/src",
    "services/schema/src",
    "services/publisher/src",
    "services/connector/src",
    "services/console/src",
    "tools/ssectl/src",
];

#[test]
fn no_function_is_longer_than_the_house_limit() {
    let root = repo_root();
    let mut long = Vec::new();
    for dir in CHECKED {
        for f in functions(&root.join(dir)).unwrap() {
            if f.lines > FUNCTION_LINES_MAX {
                long.push(format!("{} {} ({} lines)", f.at, f.name, f.lines));
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over {FUNCTION_LINES_MAX} lines:\n{}",
        long.join("\n")
    );
}

#[test]
fn the_checked_trees_are_found() {
    let root = repo_root();
    for dir in CHECKED {
        let found = functions(&root.join(dir)).unwrap();
        assert!(found.len() > 10, "{dir}: only {} functions", found.len());
    }
}

/// The files that did three or four jobs are split by concept (issue #21).
#[test]
fn the_files_that_did_several_jobs_are_split_by_concept() {
    let root = repo_root();
    for (module, parts) in [
        (
            "services/ingest/src/forward",
            &["window", "router", "session"][..],
        ),
        (
            "services/ingest/src/resources",
            &["model", "doc", "validate", "load"][..],
        ),
        ("services/ingest/src/status", &["live", "adr"][..]),
        (
            "services/publisher/src/mqtt",
            &["connection", "book", "describe"][..],
        ),
    ] {
        for part in parts {
            let file = root.join(module).join(format!("{part}.rs"));
            assert!(file.is_file(), "{} is missing", file.display());
        }
    }
}
