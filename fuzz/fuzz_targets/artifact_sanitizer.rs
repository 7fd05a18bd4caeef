//! The HTML/SVG artifact sanitiser, checked by independent parsers: whatever a model writes, the
//! content `prepare` accepts, read by html5ever (the HTML parser of Servo, as a browser reads an
//! `html` artifact or an `svg` inlined in a page) and, for `svg`, by an XML parser (as a browser
//! reads a standalone SVG file), holds no script element, no event-handler attribute, no
//! script-capable URL, no `srcdoc` and no refresh; and sanitising it again removes nothing.
#![no_main]

use agentry_core::artifact::{self, ArtifactKind};
use libfuzzer_sys::fuzz_target;
use scraper::{Html, Node};

fuzz_target!(|input: (bool, &str)| {
    let (svg, text) = input;
    let kind = if svg { ArtifactKind::Svg } else { ArtifactKind::Html };
    let Ok(prepared) = artifact::prepare(kind, text) else { return };
    let content = &prepared.content;
    check_html(content, &Html::parse_document(content));
    check_html(content, &Html::parse_fragment(content));
    if svg && let Ok(document) = roxmltree::Document::parse_with_options(content, xml_options()) {
        for node in document.descendants().filter(|n| n.is_element()) {
            let attributes = node.attributes().map(|a| (a.name(), a.value()));
            check_element(content, node.tag_name().name(), attributes);
        }
    }
    match artifact::prepare(kind, content) {
        Ok(again) => assert!(again.removed.is_empty(), "{content:?} still held {:?}", again.removed),
        Err(err) => panic!("sanitised content {content:?} is refused: {err}"),
    }
});

fn xml_options() -> roxmltree::ParsingOptions {
    roxmltree::ParsingOptions { allow_dtd: true, ..Default::default() }
}

fn check_html(content: &str, html: &Html) {
    for node in html.tree.nodes() {
        if let Node::Element(element) = node.value() {
            check_element(content, element.name(), element.attrs());
        }
    }
}

fn check_element<'a>(content: &str, name: &str, attributes: impl Iterator<Item = (&'a str, &'a str)>) {
    let name = name.to_ascii_lowercase();
    assert!(
        !matches!(name.as_str(), "script" | "object" | "embed" | "applet" | "base"),
        "<{name}> survived in {content:?}"
    );
    for (attribute, value) in attributes {
        let attribute = attribute.rsplit(':').next().unwrap_or(attribute).to_ascii_lowercase();
        assert!(!attribute.starts_with("on"), "{attribute} on <{name}> survived in {content:?}");
        assert!(attribute != "srcdoc", "srcdoc survived in {content:?}");
        if name == "meta" {
            assert!(attribute != "http-equiv", "meta http-equiv survived in {content:?}");
        }
        if attribute == "attributename" {
            let target = value.trim().to_ascii_lowercase();
            assert!(!target.starts_with("on"), "an animation of {target} survived in {content:?}");
        }
        let image_source = matches!(name.as_str(), "img" | "image" | "source" | "feimage" | "use")
            && matches!(attribute.as_str(), "src" | "href" | "srcset");
        // Lists (`srcset`, SVG `values`) hold several URLs.
        for url in value.split([',', ';']) {
            if let Some(scheme) = script_scheme(url, image_source) {
                panic!("{scheme} URL in {attribute} on <{name}> survived in {content:?}");
            }
        }
    }
}

/// The scheme a browser would find in `url` if it runs script or renders a document: tabs and
/// newlines dropped anywhere, leading C0 controls and spaces trimmed, case ignored (the WHATWG URL
/// parser); CSS-like `url(…)` wrappers looked into.
fn script_scheme(url: &str, image_source: bool) -> Option<String> {
    let cleaned: String = url.chars().filter(|c| !matches!(c, '\t' | '\n' | '\r')).collect();
    let lower = cleaned.to_ascii_lowercase();
    let mut candidates = vec![lower.trim_start_matches(|c: char| c <= ' ').to_owned()];
    if let Some(at) = lower.find("url(") {
        let inner = lower[at + 4..].trim_start_matches(|c: char| c <= ' ' || c == '"' || c == '\'');
        candidates.push(inner.to_owned());
    }
    for candidate in candidates {
        for scheme in ["javascript:", "vbscript:"] {
            if candidate.starts_with(scheme) {
                return Some(scheme.into());
            }
        }
        if let Some(media) = candidate.strip_prefix("data:") {
            let media = media.trim_start();
            let document = ["text/html", "application/xhtml+xml", "text/xml", "application/xml"]
                .into_iter()
                .any(|m| media.starts_with(m));
            if document || (media.starts_with("image/svg+xml") && !image_source) {
                return Some(format!("data:{}", &media[..media.len().min(24)]));
            }
        }
    }
    None
}
