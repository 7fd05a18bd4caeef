//! Agent-produced artifacts (Platos wire §6.7): their kinds, the per-revision size limit, and
//! [`prepare`], which validates one revision and sanitises the kinds that can carry script.
//!
//! Pure code, no IO. [`prepare`] stands between what a model writes and what clients render:
//! - `html` and `svg` are *sanitised*, not rejected (see [`prepare`] for what is removed);
//! - `json`, `csv` and `image` are validated and stored as written (an image URL is trimmed);
//! - `markdown` and `code` are stored exactly as written. Clients render markdown to HTML and
//!   **must sanitise that rendered HTML themselves**: raw HTML inside markdown passes through here.
//!
//!
//! The HTML and SVG sanitiser lives in [`sanitize`].

use std::fmt;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::id::fill_random;
use crate::time::Timestamp;

mod sanitize;

use sanitize::{has_svg_root, sanitize};

/// The largest accepted content of one artifact revision, in bytes (1 MiB).
pub const MAX_ARTIFACT_BYTES: usize = 1024 * 1024;

/// The error code of every refusal (too large content included).
const INVALID_CONTENT: &str = "invalid_content";

/// What an artifact holds, which decides how [`prepare`] checks it and how clients render it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArtifactKind {
    /// Markdown text, rendered by clients (which must sanitise the HTML they render it to).
    Markdown,
    /// Source code, shown as text.
    Code,
    /// An HTML document or fragment, sanitised.
    Html,
    /// A JSON document, which must parse.
    Json,
    /// Comma-separated values with a header row, every row as wide as the header.
    Csv,
    /// An SVG image, which must have an `<svg>` root, sanitised.
    Svg,
    /// An image: a `platos-attachment://` reference or a base64 `data:image/…` URL.
    Image,
}

impl ArtifactKind {
    /// Every kind, in wire order.
    pub const ALL: [ArtifactKind; 7] = [
        ArtifactKind::Markdown,
        ArtifactKind::Code,
        ArtifactKind::Html,
        ArtifactKind::Json,
        ArtifactKind::Csv,
        ArtifactKind::Svg,
        ArtifactKind::Image,
    ];

    /// The kind named `name` (its wire name, ASCII case-insensitively), if any.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str().eq_ignore_ascii_case(name))
    }

    /// The wire name, e.g. `"markdown"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactKind::Markdown => "markdown",
            ArtifactKind::Code => "code",
            ArtifactKind::Html => "html",
            ArtifactKind::Json => "json",
            ArtifactKind::Csv => "csv",
            ArtifactKind::Svg => "svg",
            ArtifactKind::Image => "image",
        }
    }
}

impl fmt::Display for ArtifactKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Content accepted by [`prepare`], ready to store as a revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// The content to store: as given, or sanitised (`html`, `svg`) or trimmed (`image`).
    pub content: String,
    /// What the sanitiser stripped (e.g. `"script element"`, `"onerror attribute"`,
    /// `"javascript: URL in href"`), each once, for logging and for telling the model.
    pub removed: Vec<String>,
}

impl Prepared {
    fn unchanged(content: &str) -> Self {
        Prepared { content: content.to_owned(), removed: Vec::new() }
    }
}

/// Why [`prepare`] refused content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ArtifactError {
    /// Machine-readable code: always `invalid_content` (too large content included).
    pub code: &'static str,
    /// What is wrong, in words meant for the model that produced the content.
    pub message: String,
}

impl ArtifactError {
    fn invalid(message: impl Into<String>) -> Self {
        ArtifactError { code: INVALID_CONTENT, message: message.into() }
    }
}

/// Checks one revision of an artifact of `kind` and returns what to store.
///
/// Every kind refuses empty (or whitespace-only) content and content over
/// [`MAX_ARTIFACT_BYTES`]. Then:
/// - `markdown`, `code`: kept as is (clients must sanitise the HTML they render markdown to);
/// - `json`: must parse; kept as given;
/// - `csv`: every record must have as many fields as the header (RFC 4180 quoting: quoted fields
///   may hold commas, `""` and newlines; empty lines are skipped);
/// - `image`: `platos-attachment://<id>` or `data:image/(png|jpeg|gif|webp|svg+xml);base64,…`
///   whose payload decodes and starts like an image of that type; kept trimmed;
/// - `html`: sanitised. Removed: `script` elements with their content (an unclosed one to the
///   end), `object`/`embed`/`applet`/`base` tags, `meta` with `http-equiv` (or a non-UTF-8
///   `charset`), every `on*` attribute, `srcdoc`, `xml:base`, SVG `attributeName="on…"`, any
///   attribute whose value (character references decoded, control characters dropped) holds a
///   `javascript:`, `vbscript:` or `data:` HTML/XML/SVG URL (an SVG data URL is allowed on image
///   sources), comments and CDATA sections containing `<`, processing instructions other than
///   the XML declaration, other `<!…>` declarations, unterminated tags and comments, and ESC
///   characters. Iframes are kept. A `<` that does not start markup the sanitiser re-emits (stray
///   `<`, a tag with a malformed name, one inside an attribute value) is written as `&lt;`;
/// - `svg`: must start (after whitespace, an XML declaration, comments or a DOCTYPE) with `<svg`;
///   sanitised like `html`, plus `foreignObject` elements removed with their content and any
///   DOCTYPE dropped.
///
/// Sanitised content that ends up empty is refused.
pub fn prepare(kind: ArtifactKind, content: &str) -> Result<Prepared, ArtifactError> {
    if content.trim().is_empty() {
        return Err(ArtifactError::invalid(format!("{kind} artifact is empty")));
    }
    check_size(kind, content.len())?;
    let prepared = match kind {
        ArtifactKind::Markdown | ArtifactKind::Code => Prepared::unchanged(content),
        ArtifactKind::Json => {
            serde_json::from_str::<serde::de::IgnoredAny>(content)
                .map_err(|err| ArtifactError::invalid(format!("json artifact does not parse: {err}")))?;
            Prepared::unchanged(content)
        }
        ArtifactKind::Csv => {
            check_csv(content)?;
            Prepared::unchanged(content)
        }
        ArtifactKind::Image => Prepared::unchanged(check_image(content)?),
        ArtifactKind::Html => sanitize(content, false),
        ArtifactKind::Svg => {
            // The root is checked before and after sanitising: what the sanitiser reads as one
            // token (an unterminated `<?xml …` up to the next `>`) the root check may read
            // otherwise, and the stored content must start with `<svg` too (found by fuzzing).
            let svg_root_error = || {
                ArtifactError::invalid(
                    "svg artifact must start with an <svg> element (after optional whitespace, \
                     an <?xml …?> declaration and comments)",
                )
            };
            if !has_svg_root(content) {
                return Err(svg_root_error());
            }
            let sanitized = sanitize(content, true);
            if !sanitized.content.trim().is_empty() && !has_svg_root(&sanitized.content) {
                return Err(svg_root_error());
            }
            sanitized
        }
    };
    if prepared.content.trim().is_empty() {
        return Err(ArtifactError::invalid(format!(
            "{kind} artifact is empty once sanitised (removed: {})",
            prepared.removed.join(", ")
        )));
    }
    check_size(kind, prepared.content.len())?;
    Ok(prepared)
}

/// A new artifact key such as `a_m3k9x2b1_q8z0c4rt`: `a_`, the creation time in base-36
/// milliseconds, `_`, and 8 random lowercase alphanumerics.
pub fn new_artifact_key() -> String {
    const ALNUM: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut key = String::from("a_");
    key.push_str(&base36(Timestamp::now().0.max(0) as u64));
    key.push('_');
    let mut wanted = 8;
    while wanted > 0 {
        let mut bytes = [0u8; 16];
        fill_random(&mut bytes);
        // 252 = 7 × 36: rejecting the top 4 values keeps every character equally likely.
        for byte in bytes.into_iter().filter(|byte| *byte < 252).take(wanted) {
            key.push(ALNUM[usize::from(byte % 36)] as char);
            wanted -= 1;
        }
    }
    key
}

fn base36(mut value: u64) -> String {
    let mut digits = Vec::new();
    loop {
        let digit = (value % 36) as u32;
        digits.push(char::from_digit(digit, 36).unwrap_or('0'));
        value /= 36;
        if value == 0 {
            break;
        }
    }
    digits.iter().rev().collect()
}

fn check_size(kind: ArtifactKind, len: usize) -> Result<(), ArtifactError> {
    if len > MAX_ARTIFACT_BYTES {
        return Err(ArtifactError::invalid(format!(
            "{kind} artifact is too large: {len} bytes, the limit is {MAX_ARTIFACT_BYTES} bytes (1 MiB) per revision"
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// CSV

/// Checks that every non-empty record has as many fields as the first one (the header).
fn check_csv(content: &str) -> Result<(), ArtifactError> {
    if content.contains('\0') {
        return Err(ArtifactError::invalid("csv artifact contains a NUL byte; it must be text"));
    }
    let b = content.as_bytes();
    let n = b.len();
    let mut i = 0;
    let mut line = 1usize;
    let mut header: Option<usize> = None;
    while i < n {
        // Empty lines (including a trailing newline) are not records.
        if b[i] == b'\n' || b[i] == b'\r' {
            i += if b[i] == b'\r' && b.get(i + 1) == Some(&b'\n') { 2 } else { 1 };
            line += 1;
            continue;
        }
        let record_line = line;
        let mut fields = 1usize;
        loop {
            if b.get(i) == Some(&b'"') {
                let quote_line = line;
                i += 1;
                loop {
                    match b.get(i) {
                        None => {
                            return Err(ArtifactError::invalid(format!(
                                "csv line {quote_line}: a quoted field is never closed"
                            )));
                        }
                        Some(b'"') if b.get(i + 1) == Some(&b'"') => i += 2,
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(b'\n') => {
                            line += 1;
                            i += 1;
                        }
                        Some(b'\r') => {
                            if b.get(i + 1) != Some(&b'\n') {
                                line += 1;
                            }
                            i += 1;
                        }
                        Some(_) => i += 1,
                    }
                }
            }
            // The unquoted field, or (leniently) anything after a closing quote.
            while i < n && !matches!(b[i], b',' | b'\n' | b'\r') {
                i += 1;
            }
            if b.get(i) == Some(&b',') {
                fields += 1;
                i += 1;
                continue;
            }
            break;
        }
        if i < n {
            i += if b[i] == b'\r' && b.get(i + 1) == Some(&b'\n') { 2 } else { 1 };
            line += 1;
        }
        match header {
            None => header = Some(fields),
            Some(width) if width != fields => {
                return Err(ArtifactError::invalid(format!(
                    "csv line {record_line} has {fields} field{} but the header has {width}",
                    if fields == 1 { "" } else { "s" }
                )));
            }
            Some(_) => {}
        }
    }
    if header.is_none() {
        return Err(ArtifactError::invalid("csv artifact has no header row"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Images

/// Standard base64, padding optional.
const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// Checks an image reference and returns it trimmed.
fn check_image(content: &str) -> Result<&str, ArtifactError> {
    let url = content.trim();
    if let Some(id) = url.strip_prefix("platos-attachment://") {
        if id.is_empty() || id.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ArtifactError::invalid(
                "image artifact: a platos-attachment:// reference needs an attachment id without whitespace",
            ));
        }
        return Ok(url);
    }
    let Some(rest) = strip_prefix_ci(url, "data:") else {
        return Err(ArtifactError::invalid(
            "image artifact must be a platos-attachment://<id> reference or a \
             data:image/(png|jpeg|gif|webp|svg+xml);base64,… URL",
        ));
    };
    let Some((meta, payload)) = rest.split_once(',') else {
        return Err(ArtifactError::invalid("image data URL has no `,` before its data"));
    };
    let meta = meta.to_ascii_lowercase();
    let Some(mime) = meta.strip_suffix(";base64") else {
        return Err(ArtifactError::invalid("image data URL must be base64-encoded (`data:image/…;base64,…`)"));
    };
    let looks_right: fn(&[u8]) -> bool = match mime {
        "image/png" => |d| d.starts_with(b"\x89PNG\r\n\x1a\n"),
        "image/jpeg" => |d| d.starts_with(b"\xff\xd8\xff"),
        "image/gif" => |d| d.starts_with(b"GIF87a") || d.starts_with(b"GIF89a"),
        "image/webp" => |d| d.len() >= 12 && d.starts_with(b"RIFF") && &d[8..12] == b"WEBP",
        "image/svg+xml" => |d| std::str::from_utf8(d).is_ok_and(has_svg_root),
        _ => {
            return Err(ArtifactError::invalid(format!(
                "image type `{mime}` is not accepted; use image/png, image/jpeg, image/gif, image/webp or image/svg+xml"
            )));
        }
    };
    let data = BASE64
        .decode(payload)
        .map_err(|err| ArtifactError::invalid(format!("image data is not valid base64: {err}")))?;
    if data.is_empty() {
        return Err(ArtifactError::invalid("image data is empty"));
    }
    if !looks_right(&data) {
        return Err(ArtifactError::invalid(format!("image data is not a {mime} image")));
    }
    Ok(url)
}

fn strip_prefix_ci<'s>(s: &'s str, prefix: &str) -> Option<&'s str> {
    s.get(..prefix.len()).filter(|head| head.eq_ignore_ascii_case(prefix)).and_then(|_| s.get(prefix.len()..))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error of content `prepare` refuses, checked to carry the refusal code.
    pub(super) fn refused(kind: ArtifactKind, content: &str) -> ArtifactError {
        let err = prepare(kind, content).unwrap_err();
        assert_eq!(err.code, "invalid_content");
        err
    }

    // --- kinds, limits, keys ------------------------------------------------------------------

    #[test]
    fn kinds_parse_and_serialise_lowercase() {
        for kind in ArtifactKind::ALL {
            assert_eq!(ArtifactKind::parse(kind.as_str()), Some(kind));
            assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{}\"", kind.as_str()));
            assert_eq!(serde_json::from_str::<ArtifactKind>(&format!("\"{kind}\"")).unwrap(), kind);
        }
        assert_eq!(ArtifactKind::parse("HTML"), Some(ArtifactKind::Html));
        assert_eq!(ArtifactKind::parse("pdf"), None);
        assert_eq!(ArtifactKind::parse(""), None);
        assert!(serde_json::from_str::<ArtifactKind>("\"Markdown\"").is_err());
    }

    #[test]
    fn empty_content_is_refused_for_every_kind() {
        for kind in ArtifactKind::ALL {
            assert!(refused(kind, "").message.contains("empty"));
            assert!(refused(kind, " \n\t").message.contains("empty"));
        }
    }

    #[test]
    fn content_over_the_limit_is_refused_as_invalid_content() {
        let at_limit = "a".repeat(MAX_ARTIFACT_BYTES);
        assert_eq!(prepare(ArtifactKind::Markdown, &at_limit).unwrap().content.len(), MAX_ARTIFACT_BYTES);
        let err = refused(ArtifactKind::Markdown, &"a".repeat(MAX_ARTIFACT_BYTES + 1));
        assert!(err.message.contains("too large"), "{}", err.message);
        assert!(err.message.contains("1048576"), "{}", err.message);
        assert_eq!(err.to_string(), err.message);
    }

    #[test]
    fn markdown_and_code_are_kept_as_written() {
        let text = "# Title\n\n<script>alert(1)</script> is kept: clients sanitise rendered markdown.\n";
        for kind in [ArtifactKind::Markdown, ArtifactKind::Code] {
            let prepared = prepare(kind, text).unwrap();
            assert_eq!(prepared, Prepared { content: text.to_owned(), removed: vec![] });
        }
    }

    #[test]
    fn artifact_keys_are_time_then_random() {
        let key = new_artifact_key();
        let parts: Vec<&str> = key.split('_').collect();
        assert_eq!(parts.len(), 3, "{key}");
        assert_eq!(parts[0], "a");
        let millis = u64::from_str_radix(parts[1], 36).unwrap();
        let now = Timestamp::now().0 as u64;
        assert!(now >= millis && now - millis < 60_000, "{key}");
        assert_eq!(parts[2].len(), 8);
        assert!(parts[2].bytes().all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()), "{key}");
        assert_ne!(new_artifact_key(), key);
        assert_eq!(base36(0), "0");
        assert_eq!(base36(35), "z");
        assert_eq!(base36(36), "10");
    }

    // --- json, csv, image ---------------------------------------------------------------------

    #[test]
    fn json_must_parse_and_is_kept_as_given() {
        let text = "{ \"a\": [1, 2.5, null],\n  \"b\": {\"c\": \"d\"} }";
        assert_eq!(prepare(ArtifactKind::Json, text).unwrap().content, text);
        assert!(refused(ArtifactKind::Json, "{\"a\": ").message.contains("does not parse"));
        refused(ArtifactKind::Json, "{\"a\": 1} trailing");
        refused(ArtifactKind::Json, "{'a': 1}");
    }

    #[test]
    fn csv_accepts_quoted_commas_quotes_and_newlines() {
        let text = "name,comment,n\r\nAda,\"likes commas, a lot\",1\r\nBob,\"said \"\"hi, there\"\"\",2\r\nCy,\"two\nlines, too\",3\r\n";
        assert_eq!(prepare(ArtifactKind::Csv, text).unwrap().content, text);
        prepare(ArtifactKind::Csv, "a,b\n\"1,2\",3").unwrap();
        prepare(ArtifactKind::Csv, "a,b\n\n1,2\n\n").unwrap();
        prepare(ArtifactKind::Csv, "only,a,header\n").unwrap();
        prepare(ArtifactKind::Csv, "single\n\"\"\nx\n").unwrap();
        prepare(ArtifactKind::Csv, "a,b\n,\n").unwrap();
    }

    #[test]
    fn csv_refuses_ragged_rows_with_their_line_number() {
        let err = refused(ArtifactKind::Csv, "a,b,c\n1,2,3\n4,5\n");
        assert_eq!(err.message, "csv line 3 has 2 fields but the header has 3");
        // The same commas unquoted make a row too wide.
        let err = refused(ArtifactKind::Csv, "a,b\n1,2,3\n");
        assert_eq!(err.message, "csv line 2 has 3 fields but the header has 2");
        // A quoted field spanning lines moves the count on.
        let err = refused(ArtifactKind::Csv, "a,b\n\"x\ny\",1\n2\n");
        assert_eq!(err.message, "csv line 4 has 1 field but the header has 2");
        let err = refused(ArtifactKind::Csv, "a,b\n\"never closed,1\n2,3\n");
        assert!(err.message.contains("line 2"), "{}", err.message);
        refused(ArtifactKind::Csv, "a,b\n1,\0\n");
    }

    #[test]
    fn images_are_attachments_or_base64_data_urls_of_known_types() {
        use base64::engine::general_purpose::STANDARD;
        let png = format!("data:image/png;base64,{}", STANDARD.encode(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"));
        assert_eq!(prepare(ArtifactKind::Image, &format!("{png}\n")).unwrap().content, png);
        let jpeg = format!("data:image/jpeg;base64,{}", STANDARD.encode(b"\xff\xd8\xff\xe0\0\x10JFIF"));
        prepare(ArtifactKind::Image, &jpeg).unwrap();
        let gif = format!("data:image/gif;base64,{}", STANDARD.encode(b"GIF89a\x01\0\x01\0"));
        prepare(ArtifactKind::Image, &gif).unwrap();
        let webp = format!("data:image/webp;base64,{}", STANDARD.encode(b"RIFF\x24\0\0\0WEBPVP8 "));
        prepare(ArtifactKind::Image, &webp).unwrap();
        let svg_image =
            format!("data:image/svg+xml;base64,{}", STANDARD.encode("<svg xmlns=\"x\"><circle r=\"1\"/></svg>"));
        prepare(ArtifactKind::Image, &svg_image).unwrap();
        // Padding is optional.
        prepare(ArtifactKind::Image, png.trim_end_matches('=')).unwrap();
        assert_eq!(
            prepare(ArtifactKind::Image, "platos-attachment://att_01jd4x").unwrap().content,
            "platos-attachment://att_01jd4x"
        );

        assert!(refused(ArtifactKind::Image, "data:image/png;base64,@@not base64@@").message.contains("base64"));
        assert!(refused(ArtifactKind::Image, "data:image/bmp;base64,Qk0=").message.contains("image/bmp"));
        refused(ArtifactKind::Image, "data:text/html;base64,PHNjcmlwdD4=");
        refused(ArtifactKind::Image, "data:image/png,rawbytes");
        refused(ArtifactKind::Image, "data:image/png;base64,");
        refused(ArtifactKind::Image, "data:image/png;base64");
        refused(ArtifactKind::Image, "https://example.com/cat.png");
        refused(ArtifactKind::Image, "platos-attachment://");
        refused(ArtifactKind::Image, "platos-attachment://a b");
        // The declared type must match the bytes.
        let lying = format!("data:image/png;base64,{}", STANDARD.encode(b"GIF89a\x01\0\x01\0"));
        assert!(refused(ArtifactKind::Image, &lying).message.contains("not a image/png"));
        let not_svg = format!("data:image/svg+xml;base64,{}", STANDARD.encode("<html></html>"));
        refused(ArtifactKind::Image, &not_svg);
    }
}
