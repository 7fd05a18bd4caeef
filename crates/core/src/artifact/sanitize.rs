//! The HTML / SVG sanitiser behind [`super::prepare`] for the `html` and `svg` kinds.
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
use std::ops::Range;

use super::Prepared;

#[cfg(test)]
mod tests;

// ---------------------------------------------------------------------------------------------
// SVG root

/// Whether `content` starts (after whitespace, an XML declaration, comments and a DOCTYPE) with
/// an `<svg` start tag.
pub(super) fn has_svg_root(content: &str) -> bool {
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

pub(super) fn sanitize(content: &str, svg: bool) -> Prepared {
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
