//! Keys (both key rules), layer ids, list folders, metadata names and
//! values, and upload tokens: never panic, accept
//! exactly what SPEC.md allows (checked against straightforward references
//! below), and reject with the SPEC's kind and a bounded message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use partstore::rules::{normalize_parent, validate_key, validate_layer_id, validate_metadata};
use partstore::{ErrorKind, KeyRules, UploadId};

/// SPEC: 1..=450 chars of `A-Z a-z 0-9 . [ ] = ( ) { } / _ -`; no leading or
/// trailing `/`, no `//`.
fn key_ok(s: &str) -> bool {
    let allowed = |c: char| c.is_ascii_alphanumeric() || ".[]=(){}/_-".contains(c);
    let n = s.chars().count();
    (1..=450).contains(&n)
        && s.chars().all(allowed)
        && !s.starts_with('/')
        && !s.ends_with('/')
        && !s.contains("//")
}

/// SPEC: 1..=63 chars of `A-Z a-z 0-9 - _ .`.
fn layer_ok(s: &str) -> bool {
    let n = s.chars().count();
    (1..=63).contains(&n)
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// SPEC wave 2, `KeyRules::Utf8`: 1..=1024 bytes, no control character.
fn utf8_key_ok(s: &str) -> bool {
    (1..=1024).contains(&s.len()) && !s.chars().any(char::is_control)
}

/// SPEC wave 2: metadata names are HTTP token characters.
fn tchar_ok(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// An upload token is 32 hex digits (what Display prints, in either case).
fn token_ok(s: &str) -> bool {
    s.len() == 32 && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// A list folder: the root (""), or a key with an optional trailing `/`.
fn parent_ok(s: &str) -> Option<String> {
    if s.is_empty() {
        return Some(String::new());
    }
    let folder = s.strip_suffix('/').unwrap_or(s);
    key_ok(folder).then(|| folder.to_string())
}

fn check<T: std::fmt::Debug>(
    what: &str,
    s: &str,
    got: partstore::Result<T>,
    ok: bool,
    kind: ErrorKind,
) {
    match got {
        Ok(_) if ok => {}
        Err(e) if !ok => {
            assert_eq!(e.kind(), kind, "{what} {s:?}: {e}");
            assert!(
                e.to_string().len() < 4096,
                "{what}: {} byte message",
                e.to_string().len()
            );
        }
        got => panic!("{what} {s:?}: got {got:?}, reference says ok={ok}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    check("key", s, validate_key(s), key_ok(s), ErrorKind::BadRequest);
    check(
        "utf8 key",
        s,
        KeyRules::Utf8.validate(s),
        utf8_key_ok(s),
        ErrorKind::BadRequest,
    );
    check(
        "here key",
        s,
        KeyRules::Here.validate(s),
        key_ok(s),
        ErrorKind::BadRequest,
    );
    // As a metadata name (value "v") and as a value (name "n").
    let as_name = [(s.to_owned(), "v".to_owned())];
    let as_value = [("n".to_owned(), s.to_owned())];
    let value_ok = s.len() <= 2047 && !s.chars().any(char::is_control);
    check(
        "metadata name",
        s,
        validate_metadata(&as_name),
        tchar_ok(s) && s.len() <= 2047,
        ErrorKind::BadRequest,
    );
    check(
        "metadata value",
        s,
        validate_metadata(&as_value),
        value_ok,
        ErrorKind::BadRequest,
    );
    check(
        "layer id",
        s,
        validate_layer_id(s),
        layer_ok(s),
        ErrorKind::BadRequest,
    );
    let parent = normalize_parent(s);
    if let (Ok(p), Some(want)) = (&parent, parent_ok(s)) {
        assert_eq!(*p, want, "parent {s:?}");
    }
    check(
        "parent",
        s,
        parent,
        parent_ok(s).is_some(),
        ErrorKind::BadRequest,
    );
    let token = s.parse::<UploadId>();
    if let Ok(t) = &token {
        let shown = t.to_string();
        assert_eq!(shown, s.to_ascii_lowercase());
        assert_eq!(shown.parse::<UploadId>().ok(), Some(*t));
    }
    // A malformed token can never name an upload: NotFound.
    check("upload token", s, token, token_ok(s), ErrorKind::NotFound);
});
