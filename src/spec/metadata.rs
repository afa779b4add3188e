//! User metadata (SPEC, wave 2): name/value pairs stored with an object.

use crate::error::{bad_request, Reason, Result};
use crate::spec::quoted;

/// Most bytes of user metadata per object: the UTF-8 bytes of every name
/// and value added up.
pub const MAX_METADATA_BYTES: usize = 2048;

/// RFC 7230 `tchar`: the characters of an HTTP header name.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// Checks user metadata: every name one or more RFC 7230 token characters
/// (`A-Z a-z 0-9 ! # $ % & ' * + - . ^ _ \` | ~`), no name twice (names
/// compare case-insensitively), every value printable UTF-8 (no control
/// character, Unicode `Cc`; empty is fine), and at most 2 KiB of names and
/// values in all.
///
/// Errors: BadRequest ([`Reason::InvalidMetadata`]) naming the offender.
pub fn validate_metadata(pairs: &[(String, String)]) -> Result<()> {
    let mut total = 0usize;
    for (i, (name, value)) in pairs.iter().enumerate() {
        if name.is_empty() {
            return Err(bad_request!(
                Reason::InvalidMetadata,
                "metadata name #{} is empty",
                i + 1
            ));
        }
        if let Some((at, c)) = name
            .char_indices()
            .find(|&(_, c)| !(c.is_ascii() && is_tchar(c as u8)))
        {
            return Err(bad_request!(
                Reason::InvalidMetadata,
                "metadata name {} contains {c:?} (U+{:04X}) at byte {at}; names are HTTP token characters",
                quoted(name),
                u32::from(c)
            ));
        }
        if let Some((at, c)) = value.char_indices().find(|(_, c)| c.is_control()) {
            return Err(bad_request!(
                Reason::InvalidMetadata,
                "metadata value {} of {} contains control character U+{:04X} at byte {at}",
                quoted(value),
                quoted(name),
                u32::from(c)
            ));
        }
        if pairs[..i]
            .iter()
            .any(|(earlier, _)| earlier.eq_ignore_ascii_case(name))
        {
            return Err(bad_request!(
                Reason::InvalidMetadata,
                "metadata name {} is given twice (names compare case-insensitively)",
                quoted(name)
            ));
        }
        total = total.saturating_add(name.len() + value.len());
    }
    if total > MAX_METADATA_BYTES {
        return Err(bad_request!(
            Reason::InvalidMetadata,
            "metadata is {total} bytes (names and values), more than {MAX_METADATA_BYTES} (2 KiB)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn md(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn rejected(pairs: &[(&str, &str)], names: &str) {
        let e = validate_metadata(&md(pairs)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadRequest, "{pairs:?}");
        assert_eq!(e.reason(), Some(Reason::InvalidMetadata));
        assert!(e.to_string().contains(names), "{pairs:?}: {e}");
    }

    #[test]
    fn token_names_and_printable_values_are_accepted() {
        validate_metadata(&[]).unwrap();
        validate_metadata(&md(&[
            ("x-amz-meta-Color", "blue"),
            ("!#$%&'*+-.^_`|~09azAZ", ""),
            ("unicode", "grüße, 日本 ✓"),
            ("spaces", " a b "),
        ]))
        .unwrap();
    }

    #[test]
    fn names_outside_tchar_are_rejected() {
        for bad in [
            "a b", "a:b", "a/b", "(a)", "a\"b", "é", "a\tb", "a@b", "a,b",
        ] {
            rejected(&[(bad, "v")], &format!("{bad:?}"));
        }
        rejected(&[("", "v")], "#1 is empty");
    }

    #[test]
    fn control_characters_in_values_are_rejected() {
        for bad in ["a\nb", "a\rb", "\0", "tab\there", "\u{7f}", "\u{85}"] {
            rejected(&[("n", bad)], "control character");
        }
    }

    #[test]
    fn names_differing_only_in_case_are_one_name() {
        rejected(
            &[("Color", "a"), ("cOLOR", "b")],
            "\"cOLOR\" is given twice",
        );
    }

    #[test]
    fn at_most_2_kib_of_names_and_values() {
        let v = "v".repeat(MAX_METADATA_BYTES - 1);
        validate_metadata(&md(&[("n", &v)])).unwrap();
        let v = "v".repeat(MAX_METADATA_BYTES);
        rejected(&[("n", &v)], "2049 bytes");
        // Bytes, not characters: 683 x 3-byte characters + a 1-byte name.
        let v = "日".repeat(683);
        rejected(&[("n", &v)], "2050 bytes");
    }
}
