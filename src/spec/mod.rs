//! Every rule of the SPEC in one place: limits, key and layer-id syntax, part
//! numbers, list folders, byte ranges, digests and upload tokens.
//!
//! All sizes are binary (1 MB = 1 MiB = 1,048,576 bytes). Every error names
//! the offending value; very long values are shortened in messages so that a
//! megabyte-long bad key does not produce a megabyte-long message.

mod metadata;
mod values;

use crate::error::Reason;

use crate::error::{bad_request, too_large, Result};

/// One mebibyte (1 MB in the SPEC's binary units).
pub const MIB: u64 = 1 << 20;
/// Stored data carries one CRC32C per block of this size.
pub const BLOCK_SIZE: u64 = MIB;
/// Largest part, uploaded or copied (TooLarge above it).
pub const MAX_PART_SIZE: u64 = 96 * MIB;
/// Smallest size of every part but the last one of a completed upload.
pub const MIN_PART_SIZE: u64 = 5 * MIB;
/// Every part but the last one of a completed upload is a multiple of this.
pub const PART_SIZE_MULTIPLE: u64 = MIB;
/// Lowest part number.
pub const MIN_PART_NUMBER: u32 = 1;
/// Highest part number, and so the most parts an upload can have.
pub const MAX_PART_NUMBER: u32 = 10_000;
/// Largest object a single `put_object` can store (TooLarge above it).
pub const MAX_PUT_OBJECT_SIZE: u64 = 192 * MIB;
/// Largest object a multipart upload can complete into (TooLarge above it).
pub const MAX_OBJECT_SIZE: u64 = 500 << 30;
/// Longest key, in characters (all of which are ASCII).
pub const MAX_KEY_LEN: usize = 450;
/// Longest key of a [`KeyRules::Utf8`] layer, in bytes of UTF-8 (S3's limit).
pub const MAX_UTF8_KEY_BYTES: usize = 1024;
/// Longest layer id, in characters (all of which are ASCII). 63 (ours; the
/// HERE rules left it open, 50 before wave 2) so that every S3 bucket name
/// (3..=63 of `a-z 0-9 - .`) is a layer id.
pub const MAX_LAYER_ID_LEN: usize = 63;
/// Largest page of a list call; also the default page size.
pub const MAX_LIST_LIMIT: usize = 1000;
/// Page size of a list call that names none.
pub const DEFAULT_LIST_LIMIT: usize = MAX_LIST_LIMIT;
/// The start of a `copy_part` source range is a multiple of this.
pub const COPY_ALIGNMENT: u64 = MIB;
/// Content type of an object whose upload names none (and whose layer has none).
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// Most characters of a user-supplied value that error messages repeat.
const SHOWN_CHARS: usize = 128;

/// A user-supplied value for an error message: quoted and escaped like Rust's
/// `{:?}`, and cut to its first 128 characters (a full SHA-256 digest fits) (followed by `…` and the full
/// length in bytes) when longer.
pub(crate) fn quoted(value: &str) -> String {
    match value.char_indices().nth(SHOWN_CHARS) {
        None => format!("{value:?}"),
        Some((cut, _)) => format!("{:?}… ({} bytes)", &value[..cut], value.len()),
    }
}

/// Whether `b` may appear in a key: `A-Z a-z 0-9 . [ ] = ( ) { } / _ -`.
const fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'.' | b'[' | b']' | b'=' | b'(' | b')' | b'{' | b'}' | b'/' | b'_' | b'-'
        )
}

/// [`is_key_byte`] of every byte value.
static KEY_BYTES: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = is_key_byte(b as u8);
        b += 1;
    }
    t
};

/// Whether `b` may appear in a layer id: `A-Z a-z 0-9 - _ .`.
fn is_layer_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
}

/// Describes the first character of `s` that `allowed` rejects, if any.
fn first_bad_char(s: &str, allowed: fn(u8) -> bool) -> Option<String> {
    s.char_indices()
        .find(|&(_, c)| !(c.is_ascii() && allowed(c as u8)))
        .map(|(i, c)| format!("{c:?} (U+{:04X}) at byte {i}", u32::from(c)))
}

/// True for a key that passes every rule of [`check_key`], in one pass
/// over its bytes (a table lookup each); a key it rejects goes through the
/// checks one by one, for the message.
fn key_is_plain(key: &[u8]) -> bool {
    // A key starts as if after a `/`: a leading one is a `//`.
    let mut after_slash = true;
    for &b in key {
        let slash = b == b'/';
        if !KEY_BYTES[usize::from(b)] || (slash && after_slash) {
            return false;
        }
        after_slash = slash;
    }
    !after_slash && key.len() <= MAX_KEY_LEN
}

/// Checks `key` against the key rules; `what` names the value in messages
/// (the key itself, or the parent folder it came from).
fn check_key(key: &str, what: &dyn Fn() -> String) -> Result<()> {
    if key_is_plain(key.as_bytes()) {
        return Ok(());
    }
    if key.is_empty() {
        return Err(bad_request!(Reason::InvalidKey, "{} is empty", what()));
    }
    if let Some(bad) = first_bad_char(key, is_key_byte) {
        return Err(bad_request!(
            Reason::InvalidKey,
            "{} contains {bad}; allowed are A-Z a-z 0-9 . [ ] = ( ) {{ }} / _ -",
            what()
        ));
    }
    // Only ASCII is left, so bytes are characters.
    if key.len() > MAX_KEY_LEN {
        return Err(bad_request!(
            Reason::InvalidKey,
            "{} is {} characters long, more than {MAX_KEY_LEN}",
            what(),
            key.len()
        ));
    }
    if key.starts_with('/') {
        return Err(bad_request!(
            Reason::InvalidKey,
            "{} starts with \"/\"",
            what()
        ));
    }
    if key.ends_with('/') {
        return Err(bad_request!(
            Reason::InvalidKey,
            "{} ends with \"/\"",
            what()
        ));
    }
    if key.contains("//") {
        return Err(bad_request!(
            Reason::InvalidKey,
            "{} contains \"//\"",
            what()
        ));
    }
    Ok(())
}

/// Checks an object key: 1..=450 characters of `A-Z a-z 0-9 . [ ] = ( ) { } / _ -`,
/// where `/` separates folders: no leading or trailing `/`, no `//`.
///
/// Errors: BadRequest naming the key.
pub fn validate_key(key: &str) -> Result<()> {
    check_key(key, &|| format!("key {}", quoted(key)))
}

/// Which keys a layer accepts (`LayerConfig::key_rules`). Listing splits
/// keys into folders on `/` the same way under both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KeyRules {
    /// The SPEC's keys (the default): 1..=450 characters of
    /// `A-Z a-z 0-9 . [ ] = ( ) { } / _ -`, no leading or trailing `/`, no
    /// `//`.
    #[default]
    Here,
    /// S3's keys: 1..=1024 bytes of UTF-8 without NUL or any other control
    /// character (Unicode `Cc`); `/` anywhere, leading, trailing or repeated.
    Utf8,
}

impl KeyRules {
    /// Checks `key` against these rules.
    ///
    /// Errors: BadRequest ([`Reason::InvalidKey`]) naming the key.
    pub fn validate(self, key: &str) -> Result<()> {
        match self {
            KeyRules::Here => validate_key(key),
            KeyRules::Utf8 => check_utf8_key(key, &|| format!("key {}", quoted(key))),
        }
    }

    /// The key prefix a list call's `parent` folder stands for: `""` for the
    /// root, else the folder (one trailing `/` stripped if present) followed
    /// by `/`. Under `Here` the folder must be a valid key; under `Utf8` it
    /// may be anything a key can start with, the empty folder included
    /// (`parent` `"/"`: the keys that start with `/`).
    ///
    /// Errors: BadRequest naming the parent as given.
    pub(crate) fn list_prefix(self, parent: &str) -> Result<String> {
        if parent.is_empty() {
            return Ok(String::new());
        }
        let folder = match self {
            KeyRules::Here => normalize_parent(parent)?,
            KeyRules::Utf8 => {
                let folder = parent.strip_suffix('/').unwrap_or(parent);
                let prefix = format!("{folder}/");
                let what = || format!("parent folder {}", quoted(parent));
                if let Some(bad) = first_control_char(&prefix) {
                    return Err(bad_request!(
                        Reason::InvalidKey,
                        "{} contains {bad}",
                        what()
                    ));
                }
                if prefix.len() >= MAX_UTF8_KEY_BYTES {
                    return Err(bad_request!(
                        Reason::InvalidKey,
                        "{} leaves no room for a key of at most {MAX_UTF8_KEY_BYTES} bytes",
                        what()
                    ));
                }
                folder.to_owned()
            }
        };
        Ok(format!("{folder}/"))
    }
}

/// Describes the first control character of `s`, if any.
fn first_control_char(s: &str) -> Option<String> {
    s.char_indices()
        .find(|(_, c)| c.is_control())
        .map(|(i, c)| format!("control character U+{:04X} at byte {i}", u32::from(c)))
}

/// The [`KeyRules::Utf8`] rules.
fn check_utf8_key(key: &str, what: &dyn Fn() -> String) -> Result<()> {
    if key.is_empty() {
        return Err(bad_request!(Reason::InvalidKey, "{} is empty", what()));
    }
    if key.len() > MAX_UTF8_KEY_BYTES {
        return Err(bad_request!(
            Reason::InvalidKey,
            "{} is {} bytes long, more than {MAX_UTF8_KEY_BYTES}",
            what(),
            key.len()
        ));
    }
    if let Some(bad) = first_control_char(key) {
        return Err(bad_request!(
            Reason::InvalidKey,
            "{} contains {bad}",
            what()
        ));
    }
    Ok(())
}

/// Checks a layer id: 1..=63 characters of `A-Z a-z 0-9 - _ .`.
///
/// Errors: BadRequest naming the id.
pub fn validate_layer_id(id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(bad_request!(
            Reason::InvalidLayerId,
            "layer id \"\" is empty"
        ));
    }
    if let Some(bad) = first_bad_char(id, is_layer_id_byte) {
        return Err(bad_request!(
            Reason::InvalidLayerId,
            "layer id {} contains {bad}; allowed are A-Z a-z 0-9 - _ .",
            quoted(id)
        ));
    }
    if id.len() > MAX_LAYER_ID_LEN {
        return Err(bad_request!(
            Reason::InvalidLayerId,
            "layer id {} is {} characters long, more than {MAX_LAYER_ID_LEN}",
            quoted(id),
            id.len()
        ));
    }
    Ok(())
}

/// Checks a part number: 1..=10000.
///
/// Errors: BadRequest naming the number.
pub fn validate_part_number(n: u32) -> Result<()> {
    if (MIN_PART_NUMBER..=MAX_PART_NUMBER).contains(&n) {
        Ok(())
    } else {
        Err(bad_request!(
            Reason::InvalidPartNumber,
            "part number {n} is outside {MIN_PART_NUMBER}..={MAX_PART_NUMBER}"
        ))
    }
}

/// Normalizes the parent folder of a list call: `""` is the root; otherwise
/// one trailing `/` is allowed and stripped, and what remains must be a valid
/// key (so `"/"` and `"a//"` are rejected).
///
/// Errors: BadRequest naming the parent as given.
pub fn normalize_parent(parent: &str) -> Result<String> {
    if parent.is_empty() {
        return Ok(String::new());
    }
    let folder = parent.strip_suffix('/').unwrap_or(parent);
    check_key(folder, &|| {
        if folder.len() == parent.len() {
            format!("parent folder {}", quoted(parent))
        } else {
            format!(
                "parent folder {} (without its trailing \"/\")",
                quoted(parent)
            )
        }
    })?;
    Ok(folder.to_owned())
}

/// Checks the page size of a list call: 1..=1000.
///
/// Errors: BadRequest naming the limit.
pub fn validate_list_limit(limit: usize) -> Result<()> {
    if (1..=MAX_LIST_LIMIT).contains(&limit) {
        Ok(())
    } else {
        Err(bad_request!(
            Reason::InvalidListLimit,
            "list limit {limit} is outside 1..={MAX_LIST_LIMIT}"
        ))
    }
}

/// Checks the (declared or actual) size of one uploaded or copied part: at
/// most 96 MiB.
///
/// Errors: TooLarge naming the size.
pub fn check_part_size(len: u64) -> Result<()> {
    if len <= MAX_PART_SIZE {
        Ok(())
    } else {
        Err(too_large!(
            Reason::PartTooLarge,
            "part of {len} bytes is over the limit of {MAX_PART_SIZE} bytes (96 MiB)"
        ))
    }
}

/// Checks the (declared or actual) size of a single-part `put_object`: at
/// most 192 MiB.
///
/// Errors: TooLarge naming the size.
pub fn check_put_object_size(len: u64) -> Result<()> {
    if len <= MAX_PUT_OBJECT_SIZE {
        Ok(())
    } else {
        Err(too_large!(Reason::ObjectTooLarge,
            "object of {len} bytes is over the single-put limit of {MAX_PUT_OBJECT_SIZE} bytes (192 MiB)"
        ))
    }
}

/// Checks the parts chosen to complete a multipart upload, given as
/// `(number, size)` pairs sorted by number, and returns the object's size.
///
/// Rules: at least one part; numbers exactly 1..=N (no gap, no duplicate);
/// every part but the last at least 5 MiB and a multiple of 1 MiB (all
/// BadRequest); total at most 500 GiB (TooLarge).
pub fn validate_complete(parts: &[(u32, u64)]) -> Result<u64> {
    if parts.is_empty() {
        return Err(bad_request!(
            Reason::NoParts,
            "an upload needs at least one part to complete"
        ));
    }
    let mut total: u64 = 0;
    let mut expected: u32 = MIN_PART_NUMBER;
    for (i, &(number, size)) in parts.iter().enumerate() {
        if number != expected {
            return Err(if number < expected && i > 0 && parts[i - 1].0 == number {
                bad_request!(
                    Reason::PartListedTwice,
                    "part number {number} is listed more than once"
                )
                .with_part(number)
            } else if number > expected {
                bad_request!(Reason::PartsNotConsecutive,
                    "part number {expected} is missing: parts must be numbered 1..=N without gaps (found part {number})"
                )
                .with_part(expected)
            } else {
                bad_request!(
                    Reason::PartsNotConsecutive,
                    "part numbers are not in ascending order at part {number}"
                )
                .with_part(number)
            });
        }
        validate_part_number(number)?;
        let is_last = i + 1 == parts.len();
        if !is_last {
            if size < MIN_PART_SIZE {
                return Err(bad_request!(Reason::PartTooSmall,
                    "part {number} has {size} bytes; every part but the last needs at least {MIN_PART_SIZE} bytes (5 MiB)"
                )
                .with_part(number));
            }
            if size % PART_SIZE_MULTIPLE != 0 {
                return Err(bad_request!(Reason::PartNotMibMultiple,
                    "part {number} has {size} bytes; every part but the last must be a multiple of {PART_SIZE_MULTIPLE} bytes (1 MiB)"
                )
                .with_part(number));
            }
        }
        total = total.saturating_add(size);
        expected = expected.saturating_add(1);
    }
    if total > MAX_OBJECT_SIZE {
        return Err(too_large!(Reason::UploadTooLarge,
            "the parts add up to {total} bytes, over the object limit of {MAX_OBJECT_SIZE} bytes (500 GiB)"
        ));
    }
    Ok(total)
}

/// Case-insensitive (ASCII) comparison of content types or content encodings.
pub fn media_eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

pub use metadata::{validate_metadata, MAX_METADATA_BYTES};
pub use values::{ByteRange, Digest, DigestAlgorithm, UploadId};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use std::fmt;

    fn kind<T: fmt::Debug>(r: Result<T>) -> ErrorKind {
        r.unwrap_err().kind()
    }

    fn msg<T: fmt::Debug>(r: Result<T>) -> String {
        r.unwrap_err().to_string()
    }

    /// The one-pass check accepts exactly the keys the rule-by-rule checks
    /// accept: every key of up to 4 bytes over an alphabet of good and bad
    /// bytes, and long ones around the length limit.
    #[test]
    fn one_pass_key_check_agrees_with_the_rules() {
        let rules = |k: &str| {
            !k.is_empty()
                && k.bytes().all(is_key_byte)
                && k.len() <= MAX_KEY_LEN
                && !k.starts_with('/')
                && !k.ends_with('/')
                && !k.contains("//")
        };
        let alphabet = ["a", "/", "Z", "9", ".", "-", " ", "%", "\0", "é", "~"];
        let mut keys = vec![String::new()];
        for _ in 0..4 {
            let next: Vec<String> = keys
                .iter()
                .flat_map(|k| alphabet.iter().map(move |c| format!("{k}{c}")))
                .collect();
            keys.extend(next);
            keys.dedup();
        }
        for n in [MAX_KEY_LEN - 1, MAX_KEY_LEN, MAX_KEY_LEN + 1] {
            keys.push("k".repeat(n));
            keys.push(format!("{}/", "k".repeat(n - 1)));
        }
        for k in &keys {
            assert_eq!(key_is_plain(k.as_bytes()), rules(k), "{k:?}");
            assert_eq!(validate_key(k).is_ok(), rules(k), "{k:?}");
        }
    }

    // ---- limits ----

    #[test]
    fn limits_match_spec_table() {
        assert_eq!(MIB, 1_048_576);
        assert_eq!(BLOCK_SIZE, MIB);
        assert_eq!(MAX_PART_SIZE, 100_663_296);
        assert_eq!(MIN_PART_SIZE, 5_242_880);
        assert_eq!(PART_SIZE_MULTIPLE, MIB);
        assert_eq!((MIN_PART_NUMBER, MAX_PART_NUMBER), (1, 10_000));
        assert_eq!(MAX_PUT_OBJECT_SIZE, 192 * 1_048_576);
        assert_eq!(MAX_OBJECT_SIZE, 500 * 1024 * 1024 * 1024);
        assert_eq!(MAX_KEY_LEN, 450);
        assert_eq!(MAX_LAYER_ID_LEN, 63);
        assert_eq!(MAX_UTF8_KEY_BYTES, 1024);
        assert_eq!(MAX_METADATA_BYTES, 2048);
        assert_eq!(MAX_LIST_LIMIT, 1000);
        assert_eq!(DEFAULT_LIST_LIMIT, 1000);
        assert_eq!(COPY_ALIGNMENT, MIB);
        assert_eq!(DEFAULT_CONTENT_TYPE, "application/octet-stream");
    }

    // ---- keys ----

    #[test]
    fn key_with_every_allowed_char_is_accepted() {
        validate_key("AZaz09.[]=(){}/_-").unwrap();
        validate_key("a").unwrap();
        validate_key("a/b/c.txt").unwrap();
        validate_key("x=1/(y)/{z}/[w]").unwrap();
    }

    #[test]
    fn key_of_max_len_is_accepted_and_one_more_rejected() {
        validate_key(&"k".repeat(MAX_KEY_LEN)).unwrap();
        let r = validate_key(&"k".repeat(MAX_KEY_LEN + 1));
        assert_eq!(
            kind(validate_key(&"k".repeat(MAX_KEY_LEN + 1))),
            ErrorKind::BadRequest
        );
        assert!(msg(r).contains("451"));
    }

    #[test]
    fn empty_key_is_rejected() {
        assert_eq!(kind(validate_key("")), ErrorKind::BadRequest);
        assert!(msg(validate_key("")).contains("key \"\""));
    }

    #[test]
    fn key_with_double_slash_is_rejected() {
        let e = validate_key("a//b").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadRequest);
        assert!(e.to_string().contains(r#"key "a//b" contains "//""#), "{e}");
    }

    #[test]
    fn key_with_leading_slash_is_rejected() {
        assert_eq!(kind(validate_key("/a")), ErrorKind::BadRequest);
        assert!(msg(validate_key("/a")).contains("\"/a\""));
    }

    #[test]
    fn key_with_trailing_slash_is_rejected() {
        assert_eq!(kind(validate_key("a/")), ErrorKind::BadRequest);
        assert_eq!(kind(validate_key("/")), ErrorKind::BadRequest);
    }

    #[test]
    fn key_with_disallowed_chars_is_rejected() {
        for bad in [
            "a b",
            "a\tb",
            "a\nb",
            "a+b",
            "a:b",
            "a\\b",
            "a?b",
            "a#b",
            "a%b",
            "a*b",
            "a\"b",
            "a'b",
            "a,b",
            "a;b",
            "a<b",
            "a@b",
            "a!b",
            "a~b",
            "a\0b",
            "é",
            "a\u{2026}",
        ] {
            let e = validate_key(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::BadRequest, "{bad:?}");
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn key_length_counts_chars_not_bytes_of_non_ascii() {
        // Non-ASCII is rejected for its character, whatever the length.
        let e = validate_key(&"é".repeat(300)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadRequest);
        assert!(e.to_string().contains("U+00E9"), "{e}");
    }

    #[test]
    fn huge_bad_key_gives_short_message() {
        let key = format!("{}/", "a".repeat(1 << 20));
        let e = validate_key(&key).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadRequest);
        let m = e.to_string();
        assert!(m.len() < 300, "{} bytes", m.len());
        assert!(m.contains('…') && m.contains("1048577 bytes"), "{m}");
    }

    #[test]
    fn quoted_escapes_and_truncates() {
        assert_eq!(quoted("a\"b\n"), r#""a\"b\n""#);
        assert_eq!(quoted(&"x".repeat(128)), format!("\"{}\"", "x".repeat(128)));
        assert_eq!(
            quoted(&"é".repeat(129)),
            format!("\"{}\"… (258 bytes)", "é".repeat(128))
        );
    }

    // ---- key rules (wave 2) ----

    #[test]
    fn utf8_keys_take_any_character_but_controls() {
        for k in [
            "a b",
            "/",
            "//",
            "a/",
            "/a",
            "ü/日本",
            "%+?#&",
            &"k".repeat(1024),
        ] {
            KeyRules::Utf8.validate(k).unwrap();
        }
        for k in [
            "",
            "\0",
            "a\nb",
            "\u{7f}",
            "\u{9f}",
            &"k".repeat(1025),
            &"é".repeat(513),
        ] {
            let e = KeyRules::Utf8.validate(k).unwrap_err();
            assert_eq!(e.reason(), Some(Reason::InvalidKey), "{k:?}");
        }
        // Here is validate_key.
        assert!(KeyRules::Here.validate("a b").is_err());
        KeyRules::Here.validate("a/b").unwrap();
    }

    #[test]
    fn list_prefix_of_a_parent_under_each_rule() {
        for rules in [KeyRules::Here, KeyRules::Utf8] {
            assert_eq!(rules.list_prefix("").unwrap(), "");
            assert_eq!(rules.list_prefix("a").unwrap(), "a/");
            assert_eq!(rules.list_prefix("a/").unwrap(), "a/");
        }
        // The folder "" (keys starting with '/') and "a/" exist under Utf8.
        assert_eq!(KeyRules::Utf8.list_prefix("/").unwrap(), "/");
        assert_eq!(KeyRules::Utf8.list_prefix("a//").unwrap(), "a//");
        assert!(KeyRules::Here.list_prefix("/").is_err());
        assert!(KeyRules::Here.list_prefix("a//").is_err());
        assert!(KeyRules::Utf8.list_prefix("a\nb").is_err());
        assert!(KeyRules::Utf8.list_prefix(&"k".repeat(1023)).is_err());
        KeyRules::Utf8.list_prefix(&"k".repeat(1022)).unwrap();
    }

    // ---- layer ids ----

    #[test]
    fn layer_id_with_allowed_chars_is_accepted() {
        validate_layer_id("AZaz09-_.").unwrap();
        validate_layer_id(&"l".repeat(MAX_LAYER_ID_LEN)).unwrap();
    }

    #[test]
    fn layer_id_too_long_is_rejected() {
        let e = validate_layer_id(&"l".repeat(MAX_LAYER_ID_LEN + 1)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadRequest);
        assert!(e.to_string().contains("64"), "{e}");
    }

    #[test]
    fn empty_layer_id_is_rejected() {
        assert_eq!(kind(validate_layer_id("")), ErrorKind::BadRequest);
    }

    #[test]
    fn layer_id_with_key_only_chars_is_rejected() {
        for bad in ["a/b", "a=b", "(a)", "[a]", "{a}", "a b", "a:b", "é"] {
            let e = validate_layer_id(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::BadRequest, "{bad:?}");
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
    }

    // ---- part numbers and sizes ----

    #[test]
    fn part_number_zero_is_rejected() {
        let e = validate_part_number(0).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadRequest);
        assert!(
            e.to_string().contains("part number 0 is outside 1..=10000"),
            "{e}"
        );
    }

    #[test]
    fn part_number_above_10000_is_rejected() {
        assert_eq!(kind(validate_part_number(10_001)), ErrorKind::BadRequest);
        assert_eq!(kind(validate_part_number(u32::MAX)), ErrorKind::BadRequest);
    }

    #[test]
    fn part_numbers_1_to_10000_are_accepted() {
        validate_part_number(1).unwrap();
        validate_part_number(5000).unwrap();
        validate_part_number(10_000).unwrap();
    }

    #[test]
    fn part_over_96_mib_is_too_large() {
        check_part_size(0).unwrap();
        check_part_size(MAX_PART_SIZE).unwrap();
        let e = check_part_size(MAX_PART_SIZE + 1).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TooLarge);
        assert!(e.to_string().contains("100663297"), "{e}");
    }

    #[test]
    fn put_object_over_192_mib_is_too_large() {
        check_put_object_size(MAX_PUT_OBJECT_SIZE).unwrap();
        let e = check_put_object_size(MAX_PUT_OBJECT_SIZE + 1).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TooLarge);
        assert!(e.to_string().contains("201326593"), "{e}");
    }

    #[test]
    fn complete_accepts_valid_layout_and_returns_total() {
        assert_eq!(validate_complete(&[(1, 0)]).unwrap(), 0);
        assert_eq!(validate_complete(&[(1, 7)]).unwrap(), 7);
        assert_eq!(
            validate_complete(&[(1, 5 * MIB), (2, 96 * MIB), (3, 1)]).unwrap(),
            101 * MIB + 1
        );
    }

    #[test]
    fn complete_with_no_parts_is_rejected() {
        assert_eq!(kind(validate_complete(&[])), ErrorKind::BadRequest);
    }

    #[test]
    fn complete_with_small_non_last_part_is_rejected() {
        let e = validate_complete(&[(1, 5 * MIB - 1), (2, 1)]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadRequest);
        assert!(e.to_string().contains("part 1 has 5242879 bytes"), "{e}");
    }

    #[test]
    fn complete_with_unaligned_non_last_part_is_rejected() {
        let e = validate_complete(&[(1, 6 * MIB + 1), (2, 1)]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadRequest);
        assert!(e.to_string().contains("multiple"), "{e}");
    }

    #[test]
    fn complete_with_gap_in_numbers_is_rejected() {
        let e = validate_complete(&[(1, 5 * MIB), (3, 1)]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadRequest);
        assert!(e.to_string().contains("part number 2 is missing"), "{e}");
        assert_eq!(kind(validate_complete(&[(2, 1)])), ErrorKind::BadRequest);
    }

    #[test]
    fn complete_with_duplicate_number_is_rejected() {
        let e = validate_complete(&[(1, 5 * MIB), (1, 5 * MIB)]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadRequest);
        assert!(e.to_string().contains("more than once"), "{e}");
    }

    #[test]
    fn complete_over_500_gib_is_too_large() {
        let parts: Vec<(u32, u64)> = (1..=5334).map(|n| (n, 96 * MIB)).collect();
        let e = validate_complete(&parts).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TooLarge);
        let exact: Vec<(u32, u64)> = (1..=5120).map(|n| (n, 100 * MIB)).collect();
        assert_eq!(validate_complete(&exact).unwrap(), MAX_OBJECT_SIZE);
    }

    #[test]
    fn complete_with_more_than_10000_parts_is_rejected() {
        let parts: Vec<(u32, u64)> = (1..=10_001).map(|n| (n, 5 * MIB)).collect();
        assert_eq!(kind(validate_complete(&parts)), ErrorKind::BadRequest);
    }

    // ---- list options ----

    #[test]
    fn parent_root_and_trailing_slash_are_normalized() {
        assert_eq!(normalize_parent("").unwrap(), "");
        assert_eq!(normalize_parent("a").unwrap(), "a");
        assert_eq!(normalize_parent("a/").unwrap(), "a");
        assert_eq!(normalize_parent("a/b/").unwrap(), "a/b");
    }

    #[test]
    fn parent_with_bad_shape_is_rejected() {
        for bad in ["/", "a//", "//", "/a", "a//b", "a b/"] {
            let e = normalize_parent(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::BadRequest, "{bad:?}");
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn list_limit_outside_1_to_1000_is_rejected() {
        validate_list_limit(1).unwrap();
        validate_list_limit(1000).unwrap();
        assert_eq!(kind(validate_list_limit(0)), ErrorKind::BadRequest);
        let e = validate_list_limit(1001).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadRequest);
        assert!(e.to_string().contains("1001"), "{e}");
    }

    #[test]
    fn media_types_compare_case_insensitively() {
        assert!(media_eq("Application/JSON", "application/json"));
        assert!(media_eq("", ""));
        assert!(!media_eq("application/json", "application/jsonx"));
        assert!(!media_eq("text/plain", "text/html"));
    }

    // ---- ranges ----

    fn range(s: &str) -> Result<ByteRange> {
        s.parse()
    }

    #[test]
    fn range_forms_parse() {
        assert_eq!(
            range("bytes=0-99").unwrap(),
            ByteRange::Bounded { first: 0, last: 99 }
        );
        assert_eq!(
            range("bytes=5-5").unwrap(),
            ByteRange::Bounded { first: 5, last: 5 }
        );
        assert_eq!(range("bytes=7-").unwrap(), ByteRange::From { first: 7 });
        assert_eq!(range("bytes=-3").unwrap(), ByteRange::Suffix { len: 3 });
        assert_eq!(
            range("BYTES=1-2").unwrap(),
            ByteRange::Bounded { first: 1, last: 2 }
        );
        assert_eq!(
            range("bytes=18446744073709551615-").unwrap(),
            ByteRange::From { first: u64::MAX }
        );
    }

    #[test]
    fn range_display_round_trips() {
        for r in [
            ByteRange::Bounded { first: 0, last: 0 },
            ByteRange::Bounded {
                first: 3,
                last: u64::MAX,
            },
            ByteRange::From { first: 0 },
            ByteRange::From { first: 12345 },
            ByteRange::Suffix { len: 1 },
            ByteRange::Suffix { len: u64::MAX },
        ] {
            assert_eq!(range(&r.to_string()).unwrap(), r);
        }
        assert_eq!(
            ByteRange::Bounded { first: 1, last: 2 }.to_string(),
            "bytes=1-2"
        );
        assert_eq!(ByteRange::From { first: 1 }.to_string(), "bytes=1-");
        assert_eq!(ByteRange::Suffix { len: 2 }.to_string(), "bytes=-2");
    }

    #[test]
    fn range_minus_zero_is_unsatisfiable() {
        let e = range("bytes=-0").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::RangeNotSatisfiable);
        assert!(e.to_string().contains("\"bytes=-0\""), "{e}");
        assert_eq!(kind(range("bytes=-000")), ErrorKind::RangeNotSatisfiable);
    }

    #[test]
    fn range_first_after_last_is_unsatisfiable() {
        let e = range("bytes=5-4").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::RangeNotSatisfiable);
        assert!(e.to_string().contains("bytes=5-4"), "{e}");
    }

    #[test]
    fn range_with_several_ranges_is_unsatisfiable() {
        for s in ["bytes=0-1,3-4", "bytes=0-1,", "bytes=,0-1", "bytes=-1,-2"] {
            let e = range(s).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::RangeNotSatisfiable, "{s}");
            assert!(e.to_string().contains("several"), "{e}");
        }
    }

    #[test]
    fn range_bad_syntax_is_unsatisfiable() {
        for s in [
            "",
            "bytes",
            "bytes=",
            "bytes=-",
            "bytes=1",
            "bytes=a-b",
            "bytes=1-2-3",
            "bytes=--1",
            "bytes=+1-2",
            "bytes=1-+2",
            "bytes=0x1-2",
            "bytes= 1-2",
            " bytes=1-2",
            "bytes=1-2 ",
            "bytes =1-2",
            "bytes=1 -2",
            "bytes=1- 2",
            "bytes=\t1-2",
            "items=1-2",
            "bits=1-2",
            "=1-2",
            "1-2",
            "bytes=１-2",
            "bytes=1.5-2",
        ] {
            let e = range(s).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::RangeNotSatisfiable, "{s:?}");
            assert!(e.to_string().contains(&format!("{s:?}")), "{e}");
        }
    }

    #[test]
    fn range_number_overflow_is_unsatisfiable() {
        for s in [
            "bytes=18446744073709551616-",
            "bytes=0-18446744073709551616",
            "bytes=-18446744073709551616",
            "bytes=99999999999999999999999999999-1",
        ] {
            let e = range(s).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::RangeNotSatisfiable, "{s}");
            assert!(e.to_string().contains("too large"), "{e}");
        }
    }

    #[test]
    fn range_bounded_resolves_with_last_clamped() {
        let r = range("bytes=2-5").unwrap();
        assert_eq!(r.resolve(10).unwrap(), 2..6);
        assert_eq!(r.resolve(4).unwrap(), 2..4);
        assert_eq!(r.resolve(3).unwrap(), 2..3);
        assert_eq!(
            ByteRange::Bounded {
                first: 0,
                last: u64::MAX
            }
            .resolve(u64::MAX)
            .unwrap(),
            0..u64::MAX
        );
    }

    #[test]
    fn range_start_at_or_after_size_is_unsatisfiable() {
        assert_eq!(
            kind(range("bytes=2-5").unwrap().resolve(2)),
            ErrorKind::RangeNotSatisfiable
        );
        assert_eq!(
            kind(range("bytes=10-").unwrap().resolve(10)),
            ErrorKind::RangeNotSatisfiable
        );
        let e = range("bytes=11-20").unwrap().resolve(10).unwrap_err();
        assert!(e.to_string().contains("bytes=11-20") && e.to_string().contains("10 bytes"));
    }

    #[test]
    fn range_from_resolves_to_end() {
        assert_eq!(range("bytes=0-").unwrap().resolve(10).unwrap(), 0..10);
        assert_eq!(range("bytes=9-").unwrap().resolve(10).unwrap(), 9..10);
    }

    #[test]
    fn range_suffix_resolves_to_tail_or_whole_object() {
        assert_eq!(range("bytes=-3").unwrap().resolve(10).unwrap(), 7..10);
        assert_eq!(range("bytes=-10").unwrap().resolve(10).unwrap(), 0..10);
        assert_eq!(range("bytes=-11").unwrap().resolve(10).unwrap(), 0..10);
        assert_eq!(
            ByteRange::Suffix { len: u64::MAX }.resolve(1).unwrap(),
            0..1
        );
    }

    #[test]
    fn any_range_on_empty_object_is_unsatisfiable() {
        for s in ["bytes=0-0", "bytes=0-", "bytes=-1", "bytes=0-100"] {
            let e = range(s).unwrap().resolve(0).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::RangeNotSatisfiable, "{s}");
            assert!(e.to_string().contains("empty"), "{e}");
        }
    }

    #[test]
    fn hand_built_invalid_ranges_do_not_resolve() {
        let r = ByteRange::Bounded { first: 5, last: 4 };
        assert_eq!(kind(r.resolve(10)), ErrorKind::RangeNotSatisfiable);
        assert_eq!(
            kind(ByteRange::Suffix { len: 0 }.resolve(10)),
            ErrorKind::RangeNotSatisfiable
        );
    }

    #[test]
    fn copy_range_resolves_exact_span() {
        let r = range(&format!("bytes={}-{}", MIB, 2 * MIB - 1)).unwrap();
        assert_eq!(r.resolve_copy(2 * MIB).unwrap(), MIB..2 * MIB);
        assert_eq!(range("bytes=0-0").unwrap().resolve_copy(1).unwrap(), 0..1);
        let full = ByteRange::Bounded {
            first: 0,
            last: MAX_PART_SIZE - 1,
        };
        assert_eq!(full.resolve_copy(MAX_PART_SIZE).unwrap(), 0..MAX_PART_SIZE);
    }

    #[test]
    fn copy_range_open_or_suffix_is_unsatisfiable() {
        assert_eq!(
            kind(range("bytes=0-").unwrap().resolve_copy(10)),
            ErrorKind::RangeNotSatisfiable
        );
        assert_eq!(
            kind(range("bytes=-5").unwrap().resolve_copy(10)),
            ErrorKind::RangeNotSatisfiable
        );
    }

    #[test]
    fn copy_range_unaligned_start_is_unsatisfiable() {
        let e = range("bytes=1-5").unwrap().resolve_copy(10).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::RangeNotSatisfiable);
        assert!(e.to_string().contains("multiple"), "{e}");
    }

    #[test]
    fn copy_range_past_end_is_unsatisfiable_not_clamped() {
        let e = range("bytes=0-10").unwrap().resolve_copy(10).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::RangeNotSatisfiable);
        assert_eq!(
            kind(range("bytes=0-0").unwrap().resolve_copy(0)),
            ErrorKind::RangeNotSatisfiable
        );
    }

    #[test]
    fn copy_range_first_after_last_is_unsatisfiable() {
        let r = ByteRange::Bounded {
            first: MIB,
            last: 0,
        };
        assert_eq!(
            kind(r.resolve_copy(10 * MIB)),
            ErrorKind::RangeNotSatisfiable
        );
    }

    #[test]
    fn copy_range_over_96_mib_is_too_large() {
        let r = ByteRange::Bounded {
            first: 0,
            last: MAX_PART_SIZE,
        };
        let e = r.resolve_copy(MAX_PART_SIZE + 1).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TooLarge);
        assert!(e.to_string().contains("100663297"), "{e}");
    }

    // ---- digests ----

    #[test]
    fn digest_algorithm_names_and_lengths() {
        let expect = [
            (DigestAlgorithm::Crc32c, "CRC-32C", 4),
            (DigestAlgorithm::Md5, "MD5", 16),
            (DigestAlgorithm::Sha1, "SHA1", 20),
            (DigestAlgorithm::Sha256, "SHA256", 32),
        ];
        for (alg, name, len) in expect {
            assert_eq!(alg.name(), name);
            assert_eq!(alg.to_string(), name);
            assert_eq!(alg.digest_len(), len);
            assert_eq!(name.parse::<DigestAlgorithm>().unwrap(), alg);
        }
        assert_eq!(
            DigestAlgorithm::ALL.map(|a| a.name()),
            ["CRC-32C", "MD5", "SHA1", "SHA256"]
        );
    }

    #[test]
    fn digest_algorithm_parses_case_insensitively_with_optional_hyphen() {
        use DigestAlgorithm::*;
        for (s, alg) in [
            ("crc32c", Crc32c),
            ("CRC32C", Crc32c),
            ("crc-32c", Crc32c),
            ("Crc-32C", Crc32c),
            ("md5", Md5),
            ("MD-5", Md5),
            ("sha1", Sha1),
            ("sha-1", Sha1),
            ("SHA-1", Sha1),
            ("sha256", Sha256),
            ("sha-256", Sha256),
            ("Sha-256", Sha256),
        ] {
            assert_eq!(s.parse::<DigestAlgorithm>().unwrap(), alg, "{s}");
        }
    }

    #[test]
    fn unknown_digest_algorithm_is_bad_request() {
        for s in [
            "", "sha512", "crc32", "sha--256", "sha_256", "sha 256", " sha256", "sha256 ",
            "s-ha256", "-sha256",
        ] {
            let e = s.parse::<DigestAlgorithm>().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::BadRequest, "{s:?}");
            assert!(e.to_string().contains(&format!("{s:?}")), "{e}");
        }
    }

    #[test]
    fn digest_crc32c_hello_world() {
        let d: Digest = "CRC-32C:c99465aa".parse().unwrap();
        assert_eq!(d.algorithm(), DigestAlgorithm::Crc32c);
        assert_eq!(d.bytes(), crc32c::crc32c(b"hello world").to_be_bytes());
        assert_eq!(d, Digest::from_crc32c(0xc994_65aa));
        assert_eq!(d.to_string(), "CRC-32C:c99465aa");
    }

    #[test]
    fn digest_crc32c_check_value_123456789() {
        let d: Digest = "crc32c:E3069283".parse().unwrap();
        assert_eq!(d.bytes(), crc32c::crc32c(b"123456789").to_be_bytes());
        assert_eq!(d.to_hex(), "e3069283");
    }

    #[test]
    fn digest_parses_any_case_and_displays_canonically() {
        let hex = "B94D27B9934D3E08A52E52D7DA7DABFAC484EFE37A5380EE9088F7ACE2EFCDE9";
        let d: Digest = format!("sha-256:{hex}").parse().unwrap();
        assert_eq!(d.algorithm(), DigestAlgorithm::Sha256);
        assert_eq!(
            d.to_string(),
            format!("SHA256:{}", hex.to_ascii_lowercase())
        );
        assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
        let m: Digest = "md5:5EB63BBBE01EEED093CB22BB8F5ACDC3".parse().unwrap();
        assert_eq!(m.to_string(), "MD5:5eb63bbbe01eeed093cb22bb8f5acdc3");
        let s: Digest = "SHA-1:2aae6c35c94fcfb415dbe95f408b9ce91ee846ed"
            .parse()
            .unwrap();
        assert_eq!(
            s.to_string(),
            "SHA1:2aae6c35c94fcfb415dbe95f408b9ce91ee846ed"
        );
    }

    #[test]
    fn digest_with_wrong_hex_length_is_bad_request() {
        for s in [
            "CRC-32C:c99465a",
            "CRC-32C:c99465aa0",
            "CRC-32C:",
            "MD5:c99465aa",
            "SHA1:b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9",
            "SHA256:2aae6c35c94fcfb415dbe95f408b9ce91ee846ed",
        ] {
            let e = s.parse::<Digest>().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::BadRequest, "{s}");
            assert!(e.to_string().contains(&quoted(s)), "{e}");
        }
    }

    #[test]
    fn digest_with_bad_syntax_is_bad_request() {
        for s in [
            "",
            "c99465aa",
            ":c99465aa",
            "CRC-32C c99465aa",
            "CRC-32C:c99465ag",
            "CRC-32C:+c99465a",
            "CRC-32C: c99465aa",
            "CRC-32C:c99465aa ",
            " CRC-32C:c99465aa",
            "CRC-32C:c9:9465aa",
            "CRC-32C::c99465aa",
            "SHA512:c99465aa",
            "CRC-32C:c99465\u{e9}",
        ] {
            let e = s.parse::<Digest>().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::BadRequest, "{s:?}");
            assert!(e.to_string().contains(&format!("{s:?}")), "{e}");
        }
    }

    #[test]
    fn huge_bad_digest_gives_short_message() {
        let s = format!("SHA256:{}", "0".repeat(1 << 20));
        let e = s.parse::<Digest>().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadRequest);
        assert!(e.to_string().len() < 300);
    }

    #[test]
    fn digest_new_checks_length() {
        let d = Digest::new(DigestAlgorithm::Md5, &[7u8; 16]).unwrap();
        assert_eq!(d.bytes(), &[7u8; 16]);
        assert_eq!(d.to_hex(), "07".repeat(16));
        for alg in DigestAlgorithm::ALL {
            let e = Digest::new(alg, &[0u8; 5]).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::BadRequest);
            assert!(e.to_string().contains(alg.name()), "{e}");
            Digest::new(alg, &vec![0u8; alg.digest_len()]).unwrap();
        }
    }

    #[test]
    fn digests_of_different_algorithms_are_unequal() {
        let a = Digest::new(DigestAlgorithm::Md5, &[0u8; 16]).unwrap();
        let b = Digest::new(DigestAlgorithm::Sha256, &[0u8; 32]).unwrap();
        assert_ne!(a, b);
    }

    // ---- upload tokens ----

    #[test]
    fn upload_id_displays_32_lowercase_hex_and_round_trips() {
        let id = UploadId::from_bytes([0xAB; 16]);
        assert_eq!(id.to_string(), "ab".repeat(16));
        assert_eq!(id.to_string().parse::<UploadId>().unwrap(), id);
        assert_eq!("AB".repeat(16).parse::<UploadId>().unwrap(), id);
        assert_eq!(id.as_bytes(), &[0xAB; 16]);
    }

    #[test]
    fn random_upload_ids_differ() {
        let a = UploadId::random().unwrap();
        let b = UploadId::random().unwrap();
        assert_ne!(a, b);
        assert_ne!(a.as_bytes(), &[0u8; 16]);
        let s = a.to_string();
        assert_eq!(s.len(), 32);
        assert!(s
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
    }

    #[test]
    fn malformed_upload_id_is_not_found() {
        for s in [
            "",
            "abc",
            &"a".repeat(31),
            &"a".repeat(33),
            &"g".repeat(32),
            &format!(" {}", "a".repeat(31)),
            &format!("+{}", "a".repeat(31)),
            &format!("{}\u{e9}", "a".repeat(30)),
        ] {
            let e = s.parse::<UploadId>().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::NotFound, "{s:?}");
            assert!(
                e.to_string().contains(&format!("unknown upload {s:?}")),
                "{e}"
            );
        }
    }

    #[test]
    fn upload_id_order_follows_bytes() {
        let lo = UploadId::from_bytes([0; 16]);
        let hi = UploadId::from_bytes([1; 16]);
        assert!(lo < hi);
    }
}
