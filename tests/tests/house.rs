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

/// `just --list` shows, for each recipe, only the comment line right above it (or its `[doc]`
/// attribute): a recipe explained over several comment lines must say what it does in a `[doc]`,
/// or the list shows the tail of a sentence ("the Prometheus alert rules.").
#[test]
fn every_recipe_is_listed_with_a_whole_sentence() {
    let justfile = std::fs::read_to_string(repo_root().join("Justfile")).unwrap();
    let lines: Vec<&str> = justfile.lines().collect();
    let header = |l: &str| {
        let name = l.split(':').next().unwrap_or_default();
        l.contains(':')
            && !l.starts_with(['#', ' ', '\t', '['])
            && !name.contains([' ', '='])
            && !matches!(name, "set" | "export")
    };
    let mut recipes = 0;
    for (i, line) in lines.iter().enumerate().filter(|(_, l)| header(l)) {
        recipes += 1;
        let name = line.split(':').next().unwrap();
        let above = lines[..i].iter().rev();
        let attributes: Vec<&&str> = above.clone().take_while(|l| l.starts_with('[')).collect();
        if attributes.iter().any(|a| a.starts_with("[doc(")) {
            continue;
        }
        let comments: Vec<&&str> = above
            .skip(attributes.len())
            .take_while(|l| l.starts_with('#'))
            .collect();
        assert_eq!(
            comments.len(),
            1,
            "recipe {name}: `just --list` shows only the last of its {} comment lines; give it \
             a [doc('...')]",
            comments.len()
        );
        let doc = comments[0].trim_start_matches('#').trim();
        assert!(
            doc.starts_with(|c: char| c.is_ascii_uppercase()) && doc.ends_with('.'),
            "recipe {name}: {doc:?} is not a sentence"
        );
    }
    assert!(
        recipes >= 10,
        "only {recipes} recipes found in the Justfile"
    );
}

/// The README's and docs' example calls name the demo's own asset, so that a reader who pastes
/// one while `just up` runs sees messages ("my-sse-source" matched nothing).
#[test]
fn example_calls_name_the_demos_asset() {
    let root = repo_root();
    let demo =
        std::fs::read_to_string(root.join("deploy/local/resources/weather-station.yaml")).unwrap();
    let mut docs = vec![root.join("README.md")];
    docs.extend(
        std::fs::read_dir(root.join("docs"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "md")),
    );
    let mut named = 0;
    for doc in docs {
        let text = std::fs::read_to_string(&doc).unwrap();
        for asset in text.split("{\"asset\":\"").skip(1) {
            let asset = asset.split('"').next().unwrap();
            named += 1;
            assert!(
                demo.contains(&format!("kind: Asset\nmetadata:\n  name: {asset}\n")),
                "{}: example asset {asset:?} is not the demo's",
                doc.display()
            );
        }
    }
    assert!(named >= 2, "only {named} example calls found");
}
