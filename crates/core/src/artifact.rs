//! Agent-produced artifacts (Platos wire §6.7): their kinds, the per-revision size limit, and
//! [`prepare`], which validates one revision and sanitises the kinds that can carry script.
//!
//! Pure code, no IO. [`prepare`] stands between what a model writes and what clients render:
//! - `html` and `svg` are *sanitised*, not rejected (see [`prepare`] for what is removed);
//! - `json`, `csv` and `image` are validated and stored as written (an image URL is trimmed);
//! - `markdown` and `code` are stored exactly as written. Clients render markdown to HTML and
//!   **must sanitise that rendered HTML themselves**: raw HTML inside markdown passes through here.
//!
//! The HTML sanitiser is a small tokenizer that follows the WHATWG tokenizer for tags and
//! attributes, so it splits markup where a browser does, and re-emits safe markup byte for byte.
//! It keeps one invariant that makes its output safe whatever context a browser parses it in
//! (raw-text elements such as `<noscript>` or `<style>`, SVG foreign content, or a standalone SVG
//! document parsed as XML): every `<` in the output starts a tag, comment, CDATA section or
//! declaration that the sanitiser itself emitted after checking it. A `<` anywhere else (in text,
//! in an attribute value) is written as `&lt;`, and tag or attribute names containing odd
//! characters are not emitted as markup.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::id::fill_random;
use crate::time::Timestamp;

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

// ---------------------------------------------------------------------------------------------
// SVG root

/// Whether `content` starts (after whitespace, an XML declaration, comments and a DOCTYPE) with
/// an `<svg` start tag.
fn has_svg_root(content: &str) -> bool {
    let b = content.as_bytes();
    let mut i = if b.starts_with("\u{feff}".as_bytes()) { 3 } else { 0 };
    loop {
        while b.get(i).is_some_and(|c| is_ws(*c)) {
            i += 1;
        }
        let next = if starts_at(b, i, b"<?xml") {
            find_seq(b, i, b"?>").map(|end| end + 2)
        } else if starts_at(b, i, b"<!--") {
            find_seq(b, i + 4, b"-->").map(|end| end + 3)
        } else if starts_at_ci(b, i, b"<!doctype") {
            find_byte(b, i, b'>').map(|end| end + 1)
        } else {
            break;
        };
        match next {
            Some(next) => i = next,
            None => return false,
        }
    }
    starts_at(b, i, b"<svg") && b.get(i + 4).is_some_and(|c| is_ws(*c) || matches!(c, b'>' | b'/'))
}

// ---------------------------------------------------------------------------------------------
// HTML / SVG sanitiser

fn sanitize(content: &str, svg: bool) -> Prepared {
    let mut removed = Vec::new();
    // ESC switches ISO-2022-JP decoders (a page whose charset a browser guesses), which can hide
    // quotes from the tokenizer; it has no business in an artifact.
    let content: Cow<'_, str> = if content.contains('\u{1b}') {
        removed.push("ESC control characters".to_owned());
        Cow::Owned(content.replace('\u{1b}', ""))
    } else {
        Cow::Borrowed(content)
    };
    let mut sanitizer =
        Sanitizer { src: &content, b: content.as_bytes(), out: String::with_capacity(content.len()), removed, svg };
    sanitizer.run();
    Prepared { content: sanitizer.out, removed: sanitizer.removed }
}

/// One tag as the WHATWG tokenizer splits it.
#[derive(Debug)]
struct Tag {
    /// The tag name as written.
    name: Range<usize>,
    attrs: Vec<Attr>,
    /// Ends in `/>`.
    self_closing: bool,
    /// Just past the closing `>`.
    end: usize,
}

#[derive(Debug)]
struct Attr {
    name: Range<usize>,
    value: Option<AttrValue>,
    /// The whole attribute as written (name, `=`, quoted value).
    text: Range<usize>,
}

#[derive(Debug)]
struct AttrValue {
    /// The value as written, without its quotes, character references not decoded.
    raw: Range<usize>,
    quoted: bool,
}

/// Tokenizes the tag whose name starts at `name_start` (just past `<` or `</`), following the
/// WHATWG tag states: names end at whitespace, `/` or `>`; `/` not before `>` separates
/// attributes; unquoted values end at whitespace or `>`; a quoted value may hold `>`. `None` when
/// the input ends inside the tag (browsers then drop the tag).
fn parse_tag(b: &[u8], name_start: usize) -> Option<Tag> {
    let n = b.len();
    let mut i = name_start;
    while i < n && !is_ws(b[i]) && b[i] != b'/' && b[i] != b'>' {
        i += 1;
    }
    let name = name_start..i;
    let mut attrs = Vec::new();
    loop {
        while i < n && is_ws(b[i]) {
            i += 1;
        }
        match *b.get(i)? {
            b'>' => return Some(Tag { name, attrs, self_closing: false, end: i + 1 }),
            b'/' => {
                if b.get(i + 1) == Some(&b'>') {
                    return Some(Tag { name, attrs, self_closing: true, end: i + 2 });
                }
                i += 1;
                continue;
            }
            _ => {}
        }
        // An attribute name: its first character may be anything (even `=`, a quote or `<`).
        let attr_start = i;
        i += 1;
        while i < n && !is_ws(b[i]) && !matches!(b[i], b'/' | b'>' | b'=') {
            i += 1;
        }
        let attr_name = attr_start..i;
        let mut j = i;
        while j < n && is_ws(b[j]) {
            j += 1;
        }
        let value = if b.get(j) == Some(&b'=') {
            i = j + 1;
            while i < n && is_ws(b[i]) {
                i += 1;
            }
            match *b.get(i)? {
                quote @ (b'"' | b'\'') => {
                    let start = i + 1;
                    let close = find_byte(b, start, quote)?;
                    i = close + 1;
                    Some(AttrValue { raw: start..close, quoted: true })
                }
                // `name=>`: an empty value, and the `>` ends the tag.
                b'>' => Some(AttrValue { raw: i..i, quoted: false }),
                _ => {
                    let start = i;
                    while i < n && !is_ws(b[i]) && b[i] != b'>' {
                        i += 1;
                    }
                    Some(AttrValue { raw: start..i, quoted: false })
                }
            }
        } else {
            None
        };
        attrs.push(Attr { name: attr_name, value, text: attr_start..i });
    }
}

/// What to do with one attribute.
enum Verdict {
    Keep,
    Rewrite(String),
    Drop(String),
}

struct Sanitizer<'a> {
    src: &'a str,
    b: &'a [u8],
    out: String,
    removed: Vec<String>,
    /// SVG rules: `foreignObject` removed, DOCTYPEs dropped, `<script/>` complete.
    svg: bool,
}

impl<'a> Sanitizer<'a> {
    fn run(&mut self) {
        let mut pos = 0;
        while pos < self.b.len() {
            let Some(lt) = find_byte(self.b, pos, b'<') else {
                self.emit(pos..self.b.len());
                break;
            };
            self.emit(pos..lt);
            pos = self.markup(lt);
        }
    }

    /// Handles the `<` at `at`; returns where to continue.
    fn markup(&mut self, at: usize) -> usize {
        match self.b.get(at + 1) {
            Some(c) if c.is_ascii_alphabetic() => self.start_tag(at),
            Some(b'/') => self.end_tag(at),
            Some(b'!') => self.declaration(at),
            Some(b'?') => self.processing_instruction(at),
            // Text, as in a browser; escaped so that nothing emitted later can turn it into a tag.
            _ => self.escape_lt(at),
        }
    }

    fn escape_lt(&mut self, at: usize) -> usize {
        self.out.push_str("&lt;");
        at + 1
    }

    fn start_tag(&mut self, at: usize) -> usize {
        if let Some(resume) = self.malformed_name(at, at + 1) {
            return resume;
        }
        let Some(tag) = parse_tag(self.b, at + 1) else {
            self.note("unterminated tag");
            return self.b.len();
        };
        let name = self.text(tag.name.clone());
        let local = local_name(name).to_ascii_lowercase();
        if local == "meta"
            && let Some(reason) = self.unsafe_meta(&tag)
        {
            self.note(reason);
            return tag.end;
        }
        match local.as_str() {
            "script" => {
                self.note("script element");
                // HTML ignores `/>` on a script (its content follows); XML does not.
                if tag.self_closing && self.svg { tag.end } else { self.skip_element(tag.end, name, false) }
            }
            "foreignobject" if self.svg => {
                self.note("foreignObject element");
                if tag.self_closing { tag.end } else { self.skip_element(tag.end, name, true) }
            }
            "object" | "embed" | "applet" | "base" => {
                self.note(format!("{local} element"));
                tag.end
            }
            _ => {
                self.emit_start_tag(at, &tag, &local);
                tag.end
            }
        }
    }

    /// A tag at `at` whose name (from `name_start`) is not safe to re-emit is text to us: it is
    /// written escaped, name included, and scanning resumes after the name (so that nothing is
    /// scanned twice). `None` when the name is fine.
    fn malformed_name(&mut self, at: usize, name_start: usize) -> Option<usize> {
        let b = self.b;
        let mut end = name_start;
        while end < b.len() && !is_ws(b[end]) && b[end] != b'/' && b[end] != b'>' {
            end += 1;
        }
        let name = self.text(name_start..end);
        if is_valid_tag_name(name) {
            return None;
        }
        self.out.push_str("&lt;");
        self.out.push_str(&self.text(at + 1..end).replace('<', "&lt;"));
        Some(end)
    }

    fn unsafe_meta(&self, tag: &Tag) -> Option<&'static str> {
        for attr in &tag.attrs {
            let name = self.text(attr.name.clone()).to_ascii_lowercase();
            if name == "http-equiv" {
                return Some("meta http-equiv element");
            }
            if name == "charset" {
                let value = attr.value.as_ref().map(|v| decode_char_refs(self.text(v.raw.clone()))).unwrap_or_default();
                let value = value.trim().to_ascii_lowercase();
                if value != "utf-8" && value != "utf8" {
                    return Some("meta charset other than UTF-8");
                }
            }
        }
        None
    }

    fn emit_start_tag(&mut self, at: usize, tag: &Tag, tag_local: &str) {
        let mut kept: Vec<Cow<'a, str>> = Vec::with_capacity(tag.attrs.len());
        let mut changed = false;
        for attr in &tag.attrs {
            match self.judge(tag_local, attr) {
                Verdict::Keep => match &attr.value {
                    // `name=>` rebuilt as `name= other=…` would change meaning.
                    Some(value) if !value.quoted && value.raw.is_empty() => {
                        kept.push(Cow::Owned(format!("{}=\"\"", self.text(attr.name.clone()))));
                    }
                    _ => kept.push(Cow::Borrowed(self.text(attr.text.clone()))),
                },
                Verdict::Rewrite(text) => {
                    changed = true;
                    kept.push(Cow::Owned(text));
                }
                Verdict::Drop(reason) => {
                    changed = true;
                    self.note(reason);
                }
            }
        }
        if !changed {
            self.emit(at..tag.end);
            return;
        }
        let name = self.text(tag.name.clone());
        self.out.push('<');
        self.out.push_str(name);
        for attr in kept {
            self.out.push(' ');
            self.out.push_str(&attr);
        }
        if tag.self_closing {
            self.out.push_str(" /");
        }
        self.out.push('>');
    }

    fn judge(&self, tag_local: &str, attr: &Attr) -> Verdict {
        let name = self.text(attr.name.clone());
        if !is_valid_attr_name(name) {
            return Verdict::Drop("malformed attribute name".to_owned());
        }
        let lower = name.to_ascii_lowercase();
        let local = local_name(&lower);
        if local.starts_with("on") || local == "srcdoc" || lower == "xml:base" {
            return Verdict::Drop(format!("{lower} attribute"));
        }
        let Some(value) = &attr.value else {
            return Verdict::Keep;
        };
        let raw = self.text(value.raw.clone());
        let decoded = decode_char_refs(raw);
        if local == "attributename" && strip_controls(&decoded).trim_start().to_ascii_lowercase().starts_with("on") {
            return Verdict::Drop("attributeName naming an event handler".to_owned());
        }
        let image_source =
            matches!(tag_local, "img" | "image" | "source" | "feimage") && matches!(local, "src" | "srcset" | "href");
        if let Some(scheme) = dangerous_url(&decoded, image_source) {
            return Verdict::Drop(format!("{scheme} URL in {lower}"));
        }
        if raw.contains('<') {
            let escaped = raw.replace('<', "&lt;").replace('"', "&quot;");
            return Verdict::Rewrite(format!("{name}=\"{escaped}\""));
        }
        Verdict::Keep
    }

    fn end_tag(&mut self, at: usize) -> usize {
        let n = self.b.len();
        match self.b.get(at + 2) {
            None => {
                self.out.push_str("&lt;/");
                n
            }
            // `</>` is ignored by browsers.
            Some(b'>') => at + 3,
            Some(c) if c.is_ascii_alphabetic() => {
                if let Some(resume) = self.malformed_name(at, at + 2) {
                    return resume;
                }
                let Some(tag) = parse_tag(self.b, at + 2) else {
                    self.note("unterminated tag");
                    return n;
                };
                let name = self.text(tag.name.clone());
                let local = local_name(name).to_ascii_lowercase();
                match local.as_str() {
                    "script" | "object" | "embed" | "applet" | "base" => self.note(format!("{local} element")),
                    "foreignobject" if self.svg => self.note("foreignObject element"),
                    _ if tag.attrs.is_empty() => self.emit(at..tag.end),
                    // Attributes on an end tag mean nothing; drop them.
                    _ => {
                        self.out.push_str("</");
                        self.out.push_str(name);
                        self.out.push('>');
                    }
                }
                tag.end
            }
            // `</` then not a letter: a bogus comment up to `>`.
            Some(_) => {
                self.note("malformed end tag");
                find_byte(self.b, at + 2, b'>').map_or(n, |end| end + 1)
            }
        }
    }

    /// `<!…`: a comment, CDATA section, DOCTYPE or other (bogus) declaration.
    fn declaration(&mut self, at: usize) -> usize {
        let b = self.b;
        let n = b.len();
        if starts_at(b, at, b"<!--") {
            return self.comment(at);
        }
        if starts_at(b, at, b"<![CDATA[") {
            let Some(close) = find_seq(b, at + 9, b"]]>") else {
                self.note("unterminated CDATA section");
                return n;
            };
            if b[at + 9..close].contains(&b'<') {
                self.note("CDATA section containing markup");
            } else {
                self.emit(at..close + 3);
            }
            return close + 3;
        }
        let close = find_byte(b, at + 2, b'>');
        let end = close.map_or(n, |close| close + 1);
        if starts_at_ci(b, at, b"<!doctype") {
            // Kept only in HTML, and only when an XML parser could not read an internal subset
            // (entity definitions) into it: no brackets, no `<`, balanced double quotes.
            let body = &b[at + 2..end];
            let quotes = body.iter().filter(|c| **c == b'"').count();
            let plain = !body.iter().any(|c| matches!(c, b'<' | b'[' | b']' | b'\''));
            if !self.svg && close.is_some() && plain && quotes % 2 == 0 {
                self.emit(at..end);
            } else {
                self.note("DOCTYPE declaration");
            }
            return end;
        }
        self.note("markup declaration");
        end
    }

    fn comment(&mut self, at: usize) -> usize {
        let b = self.b;
        let body = at + 4;
        // `<!-->` and `<!--->` are complete (empty) comments in HTML.
        let (body_end, end) = if starts_at(b, body, b">") {
            (body, body + 1)
        } else if starts_at(b, body, b"->") {
            (body, body + 2)
        } else {
            match find_comment_end(b, body) {
                Some(found) => found,
                None => {
                    self.note("unterminated comment");
                    return b.len();
                }
            }
        };
        if b[body..body_end].contains(&b'<') {
            self.note("comment containing markup");
        } else {
            self.emit(at..end);
        }
        end
    }

    /// `<?…>`: only an XML declaration is kept.
    fn processing_instruction(&mut self, at: usize) -> usize {
        let b = self.b;
        let end = find_byte(b, at + 2, b'>').map_or(b.len(), |end| end + 1);
        let body = &b[at..end];
        let declaration = starts_at(b, at, b"<?xml")
            && b.get(at + 5).is_some_and(|c| is_ws(*c))
            && body.ends_with(b"?>")
            && !body[1..].contains(&b'<');
        if declaration {
            self.emit(at..end);
        } else {
            self.note("processing instruction");
        }
        end
    }

    /// Skips the content and end tag of an element named `name` whose start tag ends at `from`;
    /// returns where to continue (the end of input when it is never closed). `nested` counts
    /// same-named start tags inside it.
    fn skip_element(&self, from: usize, name: &str, nested: bool) -> usize {
        let b = self.b;
        let name = name.as_bytes();
        let mut depth = 1usize;
        let mut i = from;
        while let Some(lt) = find_byte(b, i, b'<') {
            let closing = b.get(lt + 1) == Some(&b'/');
            let name_at = lt + 1 + usize::from(closing);
            let delimited = b.get(name_at + name.len()).is_none_or(|c| is_ws(*c) || matches!(c, b'/' | b'>'));
            if starts_at_ci(b, name_at, name) && delimited {
                if closing {
                    depth -= 1;
                    if depth == 0 {
                        return parse_tag(b, name_at).map_or(b.len(), |tag| tag.end);
                    }
                } else if nested {
                    depth += 1;
                }
            }
            i = lt + 1;
        }
        b.len()
    }

    fn text(&self, range: Range<usize>) -> &'a str {
        self.src.get(range).unwrap_or_default()
    }

    fn emit(&mut self, range: Range<usize>) {
        let text = self.text(range);
        self.out.push_str(text);
    }

    fn note(&mut self, what: impl Into<String>) {
        let what = what.into();
        if !self.removed.contains(&what) {
            self.removed.push(what);
        }
    }
}

/// The earliest `-->` or `--!>` from `from`: (end of the comment's text, end of the comment).
fn find_comment_end(b: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while let Some(dash) = find_byte(b, i, b'-') {
        if starts_at(b, dash, b"-->") {
            return Some((dash, dash + 3));
        }
        if starts_at(b, dash, b"--!>") {
            return Some((dash, dash + 4));
        }
        i = dash + 1;
    }
    None
}

/// A tag name safe to re-emit as markup: an ASCII letter, then letters, digits, `-`, `_`, `.`, `:`.
fn is_valid_tag_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|c| c.is_ascii_alphabetic())
        && bytes.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':'))
}

/// An attribute name safe to re-emit: like a tag name, and may also start with `_` or `:`.
fn is_valid_attr_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, b'_' | b':'))
        && bytes.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':'))
}

/// The part of a (possibly namespace-prefixed) name after its last `:`.
fn local_name(name: &str) -> &str {
    name.rsplit(':').next().unwrap_or(name)
}

/// Script-capable URL schemes, and the `data:` media types a browser renders as a document.
const SCRIPT_SCHEMES: [&str; 2] = ["javascript:", "vbscript:"];
const DOCUMENT_DATA_TYPES: [(&str, &str); 5] = [
    ("text/html", "data:text/html"),
    ("application/xhtml+xml", "data:application/xhtml+xml"),
    ("image/svg+xml", "data:image/svg+xml"),
    ("text/xml", "data:text/xml"),
    ("application/xml", "data:application/xml"),
];

/// The dangerous URL scheme in an attribute value (character references already decoded), if
/// any. Control characters are dropped (URL parsers drop tabs and newlines anywhere and other
/// controls at the start) and case is ignored; a scheme is looked for at the start and after a
/// space, `,`, `;`, `(` or quote, so lists (`srcset`, SVG `values`) and CSS-like `url(…)` values
/// are covered. An SVG data URL is allowed where it can only be shown as an image.
fn dangerous_url(decoded: &str, image_source: bool) -> Option<&'static str> {
    let normalized = strip_controls(decoded).to_ascii_lowercase();
    let b = normalized.as_bytes();
    for i in 0..b.len() {
        if i > 0 && !matches!(b[i - 1], b' ' | b',' | b';' | b'(' | b'"' | b'\'') {
            continue;
        }
        let rest = &b[i..];
        if let Some(scheme) = SCRIPT_SCHEMES.into_iter().find(|s| rest.starts_with(s.as_bytes())) {
            return Some(scheme);
        }
        if let Some(media) = rest.strip_prefix(b"data:") {
            let skip = media.iter().take_while(|c| **c == b' ').count();
            let media = &media[skip..];
            let found = DOCUMENT_DATA_TYPES.into_iter().find(|(mime, _)| media.starts_with(mime.as_bytes()));
            if let Some((mime, label)) = found
                && !(image_source && mime == "image/svg+xml")
            {
                return Some(label);
            }
        }
    }
    None
}

/// `s` without ASCII control characters (C0 and DEL).
fn strip_controls(s: &str) -> String {
    s.chars().filter(|c| !c.is_ascii_control()).collect()
}

/// Named character references that decode to ASCII (the ones that can spell a URL scheme or a
/// separator), `;` required.
const NAMED_REFS: &[(&str, &str)] = &[
    ("Tab", "\t"),
    ("NewLine", "\n"),
    ("excl", "!"),
    ("quot", "\""),
    ("QUOT", "\""),
    ("num", "#"),
    ("dollar", "$"),
    ("percnt", "%"),
    ("amp", "&"),
    ("AMP", "&"),
    ("apos", "'"),
    ("lpar", "("),
    ("rpar", ")"),
    ("ast", "*"),
    ("midast", "*"),
    ("plus", "+"),
    ("comma", ","),
    ("period", "."),
    ("sol", "/"),
    ("colon", ":"),
    ("semi", ";"),
    ("lt", "<"),
    ("LT", "<"),
    ("equals", "="),
    ("gt", ">"),
    ("GT", ">"),
    ("quest", "?"),
    ("commat", "@"),
    ("lsqb", "["),
    ("lbrack", "["),
    ("bsol", "\\"),
    ("rsqb", "]"),
    ("rbrack", "]"),
    ("Hat", "^"),
    ("lowbar", "_"),
    ("UnderBar", "_"),
    ("grave", "`"),
    ("DiacriticalGrave", "`"),
    ("lcub", "{"),
    ("lbrace", "{"),
    ("verbar", "|"),
    ("vert", "|"),
    ("VerticalLine", "|"),
    ("rcub", "}"),
    ("rbrace", "}"),
    ("fjlig", "fj"),
    ("nbsp", "\u{a0}"),
];

/// Legacy references browsers also decode without `;` (in attributes only when not followed by
/// an alphanumeric or `=`, which the name scan below gives for free).
const LEGACY_REFS: &[&str] = &["amp", "AMP", "lt", "LT", "gt", "GT", "quot", "QUOT", "nbsp"];

/// Decodes character references in an attribute value the way browsers do for everything that
/// matters to URL checks: numeric references (decimal or hex, `;` optional) and the named
/// references that produce ASCII. Unknown references are left as written.
fn decode_char_refs(raw: &str) -> String {
    let b = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut copied = 0;
    let mut i = 0;
    while let Some(amp) = find_byte(b, i, b'&') {
        i = amp + 1;
        if b.get(amp + 1) == Some(&b'#') {
            let hex = matches!(b.get(amp + 2), Some(b'x' | b'X'));
            let digits_start = amp + 2 + usize::from(hex);
            let mut j = digits_start;
            let mut value: u32 = 0;
            while let Some(digit) = b.get(j).and_then(|c| (*c as char).to_digit(if hex { 16 } else { 10 })) {
                value = value.saturating_mul(if hex { 16 } else { 10 }).saturating_add(digit).min(0x11_0000);
                j += 1;
            }
            if j == digits_start {
                continue;
            }
            if b.get(j) == Some(&b';') {
                j += 1;
            }
            out.push_str(raw.get(copied..amp).unwrap_or_default());
            out.push(char::from_u32(value).filter(|c| *c != '\0').unwrap_or('\u{fffd}'));
            copied = j;
            i = j;
        } else {
            let mut j = amp + 1;
            while b.get(j).is_some_and(|c| c.is_ascii_alphanumeric()) {
                j += 1;
            }
            let name = raw.get(amp + 1..j).unwrap_or_default();
            let (decoded, end) = if b.get(j) == Some(&b';') {
                (NAMED_REFS.iter().find(|(n, _)| *n == name).map(|(_, v)| *v), j + 1)
            } else if b.get(j) != Some(&b'=') && LEGACY_REFS.contains(&name) {
                (NAMED_REFS.iter().find(|(n, _)| *n == name).map(|(_, v)| *v), j)
            } else {
                (None, j)
            };
            if let Some(decoded) = decoded {
                out.push_str(raw.get(copied..amp).unwrap_or_default());
                out.push_str(decoded);
                copied = end;
                i = end;
            }
        }
    }
    out.push_str(raw.get(copied..).unwrap_or_default());
    out
}

// ---------------------------------------------------------------------------------------------
// Byte helpers

/// HTML whitespace (CR included: browsers turn it into LF before tokenizing).
fn is_ws(c: u8) -> bool {
    matches!(c, b'\t' | b'\n' | b'\x0c' | b'\r' | b' ')
}

fn find_byte(b: &[u8], from: usize, needle: u8) -> Option<usize> {
    b.get(from..)?.iter().position(|c| *c == needle).map(|p| p + from)
}

fn find_seq(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    b.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|p| p + from)
}

fn starts_at(b: &[u8], at: usize, prefix: &[u8]) -> bool {
    b.get(at..).is_some_and(|rest| rest.starts_with(prefix))
}

fn starts_at_ci(b: &[u8], at: usize, prefix: &[u8]) -> bool {
    b.get(at..at + prefix.len()).is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn html(content: &str) -> Prepared {
        prepare(ArtifactKind::Html, content).unwrap()
    }

    fn svg(content: &str) -> Prepared {
        prepare(ArtifactKind::Svg, content).unwrap()
    }

    fn refused(kind: ArtifactKind, content: &str) -> ArtifactError {
        let err = prepare(kind, content).unwrap_err();
        assert_eq!(err.code, "invalid_content");
        err
    }

    /// Sanitising `input` gives `expected` and removes exactly `removed`.
    fn sanitises_to(input: &str, expected: &str, removed: &[&str]) {
        let prepared = html(input);
        assert_eq!(prepared.content, expected, "input: {input:?}");
        assert_eq!(prepared.removed, removed, "input: {input:?}");
    }

    fn kept_verbatim(input: &str) {
        sanitises_to(input, input, &[]);
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

    // --- svg ----------------------------------------------------------------------------------

    #[test]
    fn svg_must_start_with_an_svg_element() {
        let doc = "\u{feff}<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- drawn by hand -->\n<!DOCTYPE svg PUBLIC \"-//W3C//DTD SVG 1.1//EN\" \"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd\">\n<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 10 10\"><circle r=\"1\"/></svg>";
        let prepared = svg(doc);
        assert_eq!(
            prepared.content,
            "\u{feff}<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- drawn by hand -->\n\n<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 10 10\"><circle r=\"1\"/></svg>"
        );
        assert_eq!(prepared.removed, ["DOCTYPE declaration"]);
        kept_svg("  <svg><rect width=\"1\" height=\"1\"/></svg>\n");
        kept_svg("<svg\n  xmlns=\"http://www.w3.org/2000/svg\"/>");

        for bad in [
            "<html><svg></svg></html>",
            "hello <svg></svg>",
            "<svgfoo></svgfoo>",
            "<SVG></SVG>",
            "<!-- never closed <svg></svg>",
            "<!DOCTYPE svg [<!ENTITY x \"javascript:alert(1)\">]><svg><a href=\"&x;\">x</a></svg>",
            "<!DOCTYPE svg SYSTEM \"a>b\" [<!ENTITY x \"javascript:alert(1)\">]><svg><a href=\"&x;\">x</a></svg>",
            // An unterminated XML declaration up to a later `?>`: the root check saw `<svg>` after
            // it, the sanitiser a bogus comment ending at the first `>` and then `<svgript>`.
            "<?xml <!-- c --><svgript><>alert(1)</s/></version=\"1.0\"?><!-- c --><svg></svg>",
        ] {
            assert!(refused(ArtifactKind::Svg, bad).message.contains("<svg>"), "{bad}");
        }
    }

    fn kept_svg(input: &str) {
        let prepared = svg(input);
        assert_eq!(prepared.content, input);
        assert!(prepared.removed.is_empty(), "{:?}", prepared.removed);
    }

    #[test]
    fn svg_foreign_objects_are_removed_with_their_content() {
        let prepared = svg("<svg><foreignObject><body onload=x></foreignObject><circle r=\"1\"/></svg>");
        assert_eq!(prepared.content, "<svg><circle r=\"1\"/></svg>");
        assert_eq!(prepared.removed, ["foreignObject element"]);
        // Nested, prefixed, mixed case, and never closed.
        let prepared = svg(
            "<svg><foreignobject><foreignObject>a</foreignObject><p>b</p></FOREIGNOBJECT><g/><svg:foreignObject>x</svg:foreignObject><text>t</text><foreignObject><iframe>",
        );
        assert_eq!(prepared.content, "<svg><g/><text>t</text>");
        // In HTML its content is just more HTML, sanitised as usual.
        sanitises_to(
            "<svg><foreignObject><p onclick=x>a</p></foreignObject></svg>",
            "<svg><foreignObject><p>a</p></foreignObject></svg>",
            &["onclick attribute"],
        );
    }

    #[test]
    fn svg_scripts_handlers_and_links_are_removed() {
        let prepared = svg(
            "<?xml version=\"1.0\"?><?xml-stylesheet type=\"text/xsl\" href=\"x.xsl\"?><svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\">\
             <script href=\"x.js\"/><svg:script xmlns:svg=\"http://www.w3.org/2000/svg\">alert(1)</svg:script>\
             <a xlink:href=\"javascript:alert(1)\"><text>x</text></a>\
             <animate attributeName=\"href\" values=\"https://a.example/;javascript:alert(1)\"/>\
             <set attributeName=\"onmouseover\" to=\"alert(1)\"/>\
             <image href=\"data:image/svg+xml;base64,PHN2Zz4=\"/>\
             <use href=\"data:image/svg+xml;base64,PHN2Zz4=#a\"/>\
             <style><![CDATA[circle { fill: red }]]></style><![CDATA[ <img src=x onerror=alert(1)> ]]></svg>",
        );
        assert_eq!(
            prepared.content,
            "<?xml version=\"1.0\"?><svg xmlns=\"http://www.w3.org/2000/svg\">\
             <a><text>x</text></a>\
             <animate attributeName=\"href\" />\
             <set to=\"alert(1)\" />\
             <image href=\"data:image/svg+xml;base64,PHN2Zz4=\"/>\
             <use />\
             <style><![CDATA[circle { fill: red }]]></style></svg>"
        );
        assert_eq!(
            prepared.removed,
            [
                "processing instruction",
                "onload attribute",
                "script element",
                "javascript: URL in xlink:href",
                "javascript: URL in values",
                "attributeName naming an event handler",
                "data:image/svg+xml URL in href",
                "CDATA section containing markup",
            ]
        );
    }

    // --- html: what survives ------------------------------------------------------------------

    #[test]
    fn safe_markup_survives_byte_for_byte() {
        kept_verbatim("<p class=\"a\">Hello <b>world</b></p>");
        kept_verbatim("<a href=\"https://example.com/?q=1&amp;r=2\">link</a>");
        kept_verbatim(
            "<!DOCTYPE html>\n<html lang=en><head><meta charset=\"utf-8\"><title>T</title>\
             <style>p > b { color: red }</style></head>\n<body>\n<!-- a note -->\
             <h1 id='top' data-x=1>Hi &amp; bye</h1><br/><img src=\"cat.png\" alt=\"a > b\" />\
             <input disabled value=''><a href=\"#top\" title=\"x>y\">up</a>\
             <a href=\"/docs/javascript:notes\">docs</a><a href=\"mailto:a@b.c\">m</a>\
             <iframe src=\"https://example.com/embed\" width=\"100\"></iframe>\
             <img src=\"data:image/png;base64,iVBORw0KGgo=\"><img srcset=\"a.png 1x, b.png 2x\">\
             <svg viewBox=\"0 0 1 1\"><circle r=\"1\"/></svg></body></html>\n",
        );
        // `/` inside an unquoted value is part of it: this `src` is `x/onerror=alert(1)`.
        kept_verbatim("<img/src=x/onerror=alert(1)>");
    }

    #[test]
    fn stray_less_than_signs_become_entities() {
        sanitises_to("a < b, 1<2, <3 and <", "a &lt; b, 1&lt;2, &lt;3 and &lt;", &[]);
        sanitises_to("x </", "x &lt;/", &[]);
    }

    // --- html: what is removed ----------------------------------------------------------------

    #[test]
    fn script_elements_are_removed_whatever_their_spelling() {
        sanitises_to("<p>a</p><ScRiPt>alert(1)</sCrIpT><p>b</p>", "<p>a</p><p>b</p>", &["script element"]);
        sanitises_to("<script src=x></script>ok", "ok", &["script element"]);
        sanitises_to("<script type=\"module\" >\nimport x from 'y'\n</script >ok", "ok", &["script element"]);
        sanitises_to("<p>a</p><script>alert(1)", "<p>a</p>", &["script element"]);
        sanitises_to("<p>a</p><script>alert(1)</scriptx>more", "<p>a</p>", &["script element"]);
        sanitises_to("ok<script>if (a</script) {}</script>", "ok", &["script element"]);
        // HTML ignores `/>` on a script: what follows is its content.
        sanitises_to("<script src=x />alert(1)</script>ok", "ok", &["script element"]);
        // Stray end tags go too.
        sanitises_to("a</script>b", "ab", &["script element"]);
        assert!(refused(ArtifactKind::Html, "<script>alert(1)</script>").message.contains("script element"));
    }

    #[test]
    fn event_handler_attributes_are_removed() {
        sanitises_to("<img src=x onerror=alert(1)>", "<img src=x>", &["onerror attribute"]);
        sanitises_to("<div onclick = \"x\">y</div>", "<div>y</div>", &["onclick attribute"]);
        sanitises_to("<BODY ONLOAD='x'>", "<BODY>", &["onload attribute"]);
        sanitises_to("<img src=\"x\"/onerror=alert(1)>", "<img src=\"x\">", &["onerror attribute"]);
        sanitises_to("<a href=\"x\"onclick=\"y\">z</a>", "<a href=\"x\">z</a>", &["onclick attribute"]);
        sanitises_to("<svg><circle x:onclick=\"y\"/></svg>", "<svg><circle /></svg>", &["x:onclick attribute"]);
        sanitises_to(
            "<details open ontoggle=alert(1)><input autofocus onfocus=alert(1)>",
            "<details open><input autofocus>",
            &["ontoggle attribute", "onfocus attribute"],
        );
    }

    #[test]
    fn quoted_values_may_hold_the_tag_end() {
        sanitises_to("<a title=\"a>b\" onclick=\"c\">x</a>", "<a title=\"a>b\">x</a>", &["onclick attribute"]);
        sanitises_to(
            "<a title='x\"y>' onmouseover=alert(1)>z</a>",
            "<a title='x\"y>'>z</a>",
            &["onmouseover attribute"],
        );
        sanitises_to(
            "<p title=\"><img src=x onerror=alert(1)>\">t</p>",
            "<p title=\">&lt;img src=x onerror=alert(1)>\">t</p>",
            &[],
        );
    }

    #[test]
    fn script_urls_are_removed_however_they_are_spelled() {
        for href in [
            "javascript:alert(1)",
            "  JaVaScRiPt:alert(1)",
            "java\tscript:alert(1)",
            "java\nscript:alert(1)",
            "\u{1}javascript:alert(1)",
            "jav&#x61;script:alert(1)",
            "jav&#X61script:alert(1)",
            "&#106;avascript:alert(1)",
            "&#0000106&#0000097vascript:alert(1)",
            "javascript&colon;alert(1)",
            "javascript&#58;alert(1)",
            "jav&Tab;ascript:alert(1)",
            "jav&NewLine;ascript:alert(1)",
            "&#x20;javascript:alert(1)",
            "vbscript:msgbox(1)",
        ] {
            for quoted in [format!("\"{href}\""), format!("'{href}'")] {
                let input = format!("<a href={quoted}>x</a>");
                let prepared = html(&input);
                assert_eq!(prepared.content, "<a>x</a>", "{input:?}");
                assert_eq!(prepared.removed.len(), 1, "{input:?}");
                assert!(prepared.removed[0].ends_with(" URL in href"), "{input:?}: {:?}", prepared.removed);
            }
        }
        sanitises_to("<IMG SRC=\"jav&#x61;script:alert(1)\">", "<IMG>", &["javascript: URL in src"]);
        sanitises_to("<a href=javascript:alert(1)>x</a>", "<a>x</a>", &["javascript: URL in href"]);
        sanitises_to(
            "<form action=\"javascript:alert(1)\"><button formaction=JAVASCRIPT:x>b</button></form>",
            "<form><button>b</button></form>",
            &["javascript: URL in action", "javascript: URL in formaction"],
        );
        sanitises_to(
            "<iframe src=\"javascript:alert(1)\"></iframe><video poster=\"javascript:x\"></video>",
            "<iframe></iframe><video></video>",
            &["javascript: URL in src", "javascript: URL in poster"],
        );
        sanitises_to(
            "<img srcset=\"a.png 1x, javascript:alert(1) 2x\"><table background=\"javascript:x\">",
            "<img><table>",
            &["javascript: URL in srcset", "javascript: URL in background"],
        );
        sanitises_to("<math href=\"javascript:alert(1)\">x</math>", "<math>x</math>", &["javascript: URL in href"]);
        sanitises_to("<p data-x=\"javascript:1\">t</p>", "<p>t</p>", &["javascript: URL in data-x"]);
    }

    #[test]
    fn html_data_urls_are_removed_but_image_data_urls_kept() {
        sanitises_to(
            "<a href=\"data:text/html;base64,PHNjcmlwdD4=\">x</a>",
            "<a>x</a>",
            &["data:text/html URL in href"],
        );
        sanitises_to(
            "<iframe src=\" DATA: Text/HTML,<p>x\"></iframe>",
            "<iframe></iframe>",
            &["data:text/html URL in src"],
        );
        sanitises_to(
            "<a href=\"data:image/svg+xml,<svg onload=alert(1)>\">x</a>",
            "<a>x</a>",
            &["data:image/svg+xml URL in href"],
        );
        kept_verbatim("<img src=\"data:image/svg+xml;base64,PHN2Zz4=\"><a href=\"data:text/plain,hi\">t</a>");
    }

    #[test]
    fn iframes_stay_but_lose_srcdoc() {
        sanitises_to(
            "<iframe srcdoc=\"<script>alert(1)</script>\" src=\"https://example.com\"></iframe>",
            "<iframe src=\"https://example.com\"></iframe>",
            &["srcdoc attribute"],
        );
        sanitises_to(
            "<iframe SRCDOC=\"&lt;script&gt;alert(1)&lt;/script&gt;\"></iframe>",
            "<iframe></iframe>",
            &["srcdoc attribute"],
        );
    }

    #[test]
    fn plugin_base_and_refresh_elements_are_removed() {
        sanitises_to(
            "<object data=\"x.swf\"><param name=a value=b><p>fallback</p></object><embed src=x.swf><applet code=x></applet><base href=\"https://evil.example/\"><p>ok</p>",
            "<param name=a value=b><p>fallback</p><p>ok</p>",
            &["object element", "embed element", "applet element", "base element"],
        );
        sanitises_to(
            "<meta http-equiv=\"refresh\" content=\"0;url=javascript:alert(1)\"><meta charset=\"iso-2022-jp\"><meta name=\"viewport\" content=\"width=device-width\"><p>ok</p>",
            "<meta name=\"viewport\" content=\"width=device-width\"><p>ok</p>",
            &["meta http-equiv element", "meta charset other than UTF-8"],
        );
    }

    #[test]
    fn comments_hiding_markup_are_dropped() {
        sanitises_to("<!-- <script>alert(1)</script> -->ok", "ok", &["comment containing markup"]);
        sanitises_to("<!--[if IE]><script>alert(1)</script><![endif]-->ok", "ok", &["comment containing markup"]);
        kept_verbatim("<!-- plain note --><!----><!-- a -- b --->");
        // `<!-->` is a whole comment in HTML: what follows is markup, sanitised as such.
        sanitises_to("<!--><img src=x onerror=alert(1)>-->", "<!--><img src=x>-->", &["onerror attribute"]);
        // `--!>` also ends a comment.
        sanitises_to("<!-- a --!><img src=x onerror=alert(1)>", "<!-- a --!><img src=x>", &["onerror attribute"]);
        sanitises_to("ok<!-- never closed", "ok", &["unterminated comment"]);
    }

    #[test]
    fn declarations_and_instructions_are_dropped() {
        sanitises_to(
            "<!DOCTYPE html SYSTEM \"x>y\" [ <!ENTITY x \"javascript:alert(1)\"> ]><a href=\"&x;\">x</a>",
            "y\" [  ]><a href=\"&x;\">x</a>",
            &["DOCTYPE declaration", "markup declaration"],
        );
        sanitises_to("<?php echo 1 ?>ok<![if x]>", "ok", &["processing instruction", "markup declaration"]);
        sanitises_to("a</ x>b</>c", "abc", &["malformed end tag"]);
    }

    // --- html: parser-confusion attacks -------------------------------------------------------

    #[test]
    fn joins_after_removal_never_form_new_tags() {
        sanitises_to(
            "<<script>x</script>img src=x onerror=alert(1)>",
            "&lt;img src=x onerror=alert(1)>",
            &["script element"],
        );
        sanitises_to(
            "<scr<script>x</script>ipt>alert(1)</script>",
            "&lt;scr&lt;script>xipt>alert(1)",
            &["script element"],
        );
    }

    #[test]
    fn raw_text_elements_cannot_be_escaped_through_attributes() {
        // A browser reads `<noscript>`'s content as text up to `</noscript`: a `<` inside an
        // attribute value must not survive as `<`.
        let prepared = html("<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\"></noscript>");
        assert_eq!(
            prepared.content,
            "<noscript><p title=\"&lt;/noscript>&lt;img src=x onerror=alert(1)>\"></noscript>"
        );
        // Nor inside attribute names, which a browser may see as the start of a tag.
        let prepared = html("<noscript><a </noscript =\">\" <img =\" src=x onerror=alert(1) \">");
        assert_eq!(prepared.content, "<noscript><a noscript =\">\">");
        assert_eq!(prepared.removed, ["malformed attribute name"]);
        let prepared = html("<style><a title=x</style><img src=1 onerror=alert(1)>>");
        assert_eq!(prepared.content, "<style><a title=\"x&lt;/style\"><img src=1>>");
        // Malformed names are not markup.
        sanitises_to("<a\"b onclick=x>t", "&lt;a\"b onclick=x>t", &[]);
        sanitises_to("<a<b onclick=x>t</a<b>", "&lt;a&lt;b onclick=x>t&lt;/a&lt;b>", &[]);
        sanitises_to("<p @click=\"x\" \"onclick=\"y\">t</p>", "<p>t</p>", &["malformed attribute name"]);
    }

    #[test]
    fn unterminated_tags_are_dropped() {
        sanitises_to("<p>ok</p><img src=x onerror=\"alert(1)", "<p>ok</p>", &["unterminated tag"]);
        sanitises_to("<p>ok</p><a href=\"x\"", "<p>ok</p>", &["unterminated tag"]);
        sanitises_to("<p>ok</p></p", "<p>ok</p>", &["unterminated tag"]);
    }

    #[test]
    fn empty_attribute_values_stay_empty_when_a_tag_is_rebuilt() {
        sanitises_to("<a onclick=x href=>t</a>", "<a href=\"\">t</a>", &["onclick attribute"]);
        sanitises_to("<a title='<b>' href=>t</a>", "<a title=\"&lt;b>\" href=\"\">t</a>", &[]);
    }

    #[test]
    fn esc_characters_are_stripped() {
        sanitises_to("<p title=\"\u{1b}$B\">x\u{1b}(B</p>", "<p title=\"$B\">x(B</p>", &["ESC control characters"]);
    }

    #[test]
    fn character_references_decode_like_a_browser() {
        assert_eq!(decode_char_refs("a&amp;b&lt;c&#x41;&#66&colon;&Tab;"), "a&b<cAB:\t");
        assert_eq!(
            decode_char_refs("&ampx &amp= &unknown; &#; &#x; &#0; &#99999999;"),
            "&ampx &amp= &unknown; &#; &#x; \u{fffd} \u{fffd}"
        );
        assert_eq!(decode_char_refs("&fjlig;&quot"), "fj\"");
    }

    #[test]
    fn pathological_input_takes_linear_time() {
        let started = std::time::Instant::now();
        for input in [
            format!("{}>", "<a<".repeat(300_000)),
            format!("{}>", "</a<".repeat(200_000)),
            format!("{}\">", "<p t=\"".repeat(150_000)),
            "<svg><foreignObject>".repeat(40_000),
            format!("<a href=\"{}\">", ";".repeat(1_000_000)),
        ] {
            let _ = prepare(ArtifactKind::Html, &input);
            let _ = prepare(ArtifactKind::Svg, &input);
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "{:?}", started.elapsed());
    }

    #[test]
    fn sanitising_is_idempotent() {
        let nasty = [
            "<p>a</p><ScRiPt>alert(1)</sCrIpT>",
            "<img src=x onerror=alert(1)><a href=\" javascript:x\">t</a>",
            "<!--><img src=x onerror=alert(1)>-->",
            "<<script>x</script>img src=x onerror=alert(1)>",
            "<noscript><a </noscript =\">\" <img =\" src=x onerror=alert(1) \">",
            "<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\"></noscript>",
            "a < b <= c <3 </ x> </> <? x ?> <!x> <![CDATA[ y ]]>",
            "<a title='\"<' href=>t</a><img/src=x/onerror=alert(1)>",
            "<svg><foreignObject><p>x</p></foreignObject><set attributeName=\" onclick\" to=x></svg>",
            "<!DOCTYPE html><meta charset=utf8><p id=a class='b c'>x</p>",
        ];
        for input in nasty {
            let once = html(input).content;
            let twice = html(&once);
            assert_eq!(twice.content, once, "{input:?}");
            assert!(twice.removed.is_empty(), "{input:?}: {:?}", twice.removed);
            let lower = once.to_ascii_lowercase();
            for bad in ["<script", "javascript:", "<img src=x onerror", "<img =\""] {
                assert!(!lower.contains(bad), "{input:?} -> {once:?}");
            }
        }
    }
}
