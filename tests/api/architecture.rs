//! STYLE rule 1: the pure core (merkle, tiles, note, entries) does no I/O and
//! nothing async. This walks the sources and fails on forbidden imports.

use std::path::Path;

const PURE: &[&str] = &["merkle.rs", "tiles.rs", "note", "entries", "policy.rs"];
const FORBIDDEN: &[&str] = &[
    "sqlx",
    "actix_web",
    "tokio",
    "reqwest",
    "std::fs",
    "std::net",
    "async fn",
    "crate::storage",
    "crate::log",
    "crate::api",
];

fn sources(path: &Path, out: &mut Vec<std::path::PathBuf>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            sources(&entry.unwrap().path(), out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_owned());
    }
}

#[test]
fn pure_core_modules_import_no_io_or_async() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    for module in PURE {
        sources(&src.join(module), &mut files);
    }
    assert!(files.len() >= 4, "found the pure modules: {files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        // Unit tests at the bottom of a file may read fixtures.
        let code = text.split("#[cfg(test)]").next().unwrap();
        for word in FORBIDDEN {
            assert!(!code.contains(word), "{} uses {word}", file.display());
        }
    }
}

#[test]
fn only_the_postgres_store_contains_sql() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let has_sql = text.contains("sqlx::query");
        let is_store = file.ends_with("storage/postgres.rs");
        assert!(!has_sql || is_store, "{} contains SQL", file.display());
    }
}
