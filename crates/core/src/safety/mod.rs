//! Safety scanning of user input and model output: PII detectors, prompt-injection patterns,
//! redaction, and conversion of findings to the wire [`SafetyFlag`].
//!
//! Every PII candidate is validated beyond its shape (Luhn for cards, mod-97 and country length
//! for IBANs, assigned ranges for SSNs, letter rules for NINOs, vendor prefixes for keys): under
//! [`SafetyPolicy::Block`] a false positive rejects an innocent message, so the detectors prefer
//! missing an odd format to firing on dates, versions, order numbers, UUIDs or hashes.
//!
//! Pure: no IO. Regexes are compiled once, on first use. The detectors are in `pii` and
//! `injection`; this module runs them, resolves overlaps, redacts and masks.

use std::collections::BTreeMap;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::event::SafetyFlag;

mod injection;
mod pii;
#[cfg(test)]
mod tests;

use injection::detect_injections;
use pii::{detect_api_keys, detect_cards, detect_emails, detect_ibans, detect_national_ids, detect_phones};

/// What a deployment does with findings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SafetyPolicy {
    /// Do not scan.
    Off,
    /// Scan and report findings as flags; the text passes unchanged.
    #[default]
    Flag,
    /// Replace PII with `[REDACTED:<type>]` and report all findings.
    Redact,
    /// Refuse text with a high-severity finding (lower ones are flagged).
    Block,
}

impl SafetyPolicy {
    /// The configured and recorded form.
    pub fn as_str(self) -> &'static str {
        match self {
            SafetyPolicy::Off => "off",
            SafetyPolicy::Flag => "flag",
            SafetyPolicy::Redact => "redact",
            SafetyPolicy::Block => "block",
        }
    }
}

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Worth noting.
    Low,
    /// Personal data that identifies someone (email, phone).
    Medium,
    /// Financial data, government ids, credentials, prompt injection.
    High,
}

impl Severity {
    /// The wire form: `low`, `medium`, `high`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }
}

/// The kind of personal or secret data found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PiiType {
    /// An email address.
    Email,
    /// A phone number in international or separated national form.
    Phone,
    /// A Luhn-valid payment card number with a known issuer prefix.
    CreditCard,
    /// A mod-97-valid IBAN.
    Iban,
    /// A US Social Security number or a UK National Insurance number.
    NationalId,
    /// An API key or access token of a known shape.
    ApiKey,
}

impl PiiType {
    /// The wire form: `email`, `phone`, `credit_card`, `iban`, `national_id`, `api_key`.
    pub fn as_str(self) -> &'static str {
        match self {
            PiiType::Email => "email",
            PiiType::Phone => "phone",
            PiiType::CreditCard => "credit_card",
            PiiType::Iban => "iban",
            PiiType::NationalId => "national_id",
            PiiType::ApiKey => "api_key",
        }
    }

    /// The severity every finding of this type has.
    pub fn severity(self) -> Severity {
        match self {
            PiiType::Email | PiiType::Phone => Severity::Medium,
            PiiType::CreditCard | PiiType::Iban | PiiType::NationalId | PiiType::ApiKey => Severity::High,
        }
    }

    /// Rank among overlapping findings of equal length: the more specific shape wins.
    fn specificity(self) -> u8 {
        match self {
            PiiType::ApiKey => 6,
            PiiType::Iban => 5,
            PiiType::CreditCard => 4,
            PiiType::NationalId => 3,
            PiiType::Email => 2,
            PiiType::Phone => 1,
        }
    }
}

/// What a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FindingKind {
    /// Personal or secret data.
    Pii(PiiType),
    /// A prompt-injection phrase, by pattern name (e.g. `ignore_previous_instructions`).
    Injection(&'static str),
}

/// One detector hit: a kind and the byte range it covers in the scanned text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Finding {
    /// What was found.
    pub kind: FindingKind,
    /// How serious it is.
    pub severity: Severity,
    /// Byte offset of the first matched byte (on a char boundary).
    pub start: usize,
    /// Byte offset just past the match (on a char boundary).
    pub end: usize,
}

impl Finding {
    fn pii(pii: PiiType, (start, end): (usize, usize)) -> Self {
        Finding { kind: FindingKind::Pii(pii), severity: pii.severity(), start, end }
    }

    fn injection(name: &'static str, start: usize, end: usize) -> Self {
        Finding { kind: FindingKind::Injection(name), severity: Severity::High, start, end }
    }

    /// The wire flag for this finding in `text` (the text that was scanned): PII is masked,
    /// injections show the matched phrase.
    pub fn to_flag(&self, text: &str) -> SafetyFlag {
        let matched = text.get(self.start..self.end);
        match self.kind {
            FindingKind::Pii(pii) => SafetyFlag {
                kind: "pii".to_owned(),
                severity: self.severity.as_str().to_owned(),
                detail: pii_detail(pii, matched.unwrap_or("")).to_owned(),
                matched_text: matched.map(|m| mask(pii, m)),
                pii_type: Some(pii.as_str().to_owned()),
                injection_pattern: None,
            },
            FindingKind::Injection(name) => SafetyFlag {
                kind: "injection".to_owned(),
                severity: self.severity.as_str().to_owned(),
                detail: format!("prompt injection: {}", name.replace('_', " ")),
                matched_text: matched.map(str::to_owned),
                pii_type: None,
                injection_pattern: Some(name.to_owned()),
            },
        }
    }

    fn len(&self) -> usize {
        self.end - self.start
    }

    fn specificity(&self) -> u8 {
        match self.kind {
            FindingKind::Pii(pii) => pii.specificity(),
            FindingKind::Injection(_) => 0,
        }
    }
}

/// Runs every detector over `text`. The findings are sorted by start and never overlap: of two
/// overlapping hits the longer is kept, and at equal length the more specific one.
pub fn scan(text: &str) -> Vec<Finding> {
    let mut found = Vec::new();
    found.extend(detect_emails(text).into_iter().map(|s| Finding::pii(PiiType::Email, s)));
    found.extend(detect_phones(text).into_iter().map(|s| Finding::pii(PiiType::Phone, s)));
    found.extend(detect_cards(text).into_iter().map(|s| Finding::pii(PiiType::CreditCard, s)));
    found.extend(detect_ibans(text).into_iter().map(|s| Finding::pii(PiiType::Iban, s)));
    found.extend(detect_national_ids(text).into_iter().map(|s| Finding::pii(PiiType::NationalId, s)));
    found.extend(detect_api_keys(text).into_iter().map(|s| Finding::pii(PiiType::ApiKey, s)));
    found.extend(detect_injections(text));
    resolve_overlaps(found)
}

/// `text` with every PII finding replaced by `[REDACTED:<pii_type>]`. Injection findings stay:
/// they are flagged or blocked, not rewritten. Findings whose range does not fit `text` are
/// ignored; overlapping ones are merged so no part of either survives.
pub fn redact(text: &str, findings: &[Finding]) -> String {
    let mut pii: Vec<(usize, usize, PiiType)> = findings
        .iter()
        .filter_map(|f| match f.kind {
            FindingKind::Pii(pii) if text.get(f.start..f.end).is_some_and(|m| !m.is_empty()) => {
                Some((f.start, f.end, pii))
            }
            _ => None,
        })
        .collect();
    pii.sort_by_key(|&(start, end, _)| (start, std::cmp::Reverse(end)));
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    for (start, end, pii) in pii {
        if start < pos {
            pos = pos.max(end);
            continue;
        }
        out.push_str(&text[pos..start]);
        out.push_str("[REDACTED:");
        out.push_str(pii.as_str());
        out.push(']');
        pos = end;
    }
    out.push_str(&text[pos..]);
    out
}

fn resolve_overlaps(mut found: Vec<Finding>) -> Vec<Finding> {
    found.sort_by(|a, b| b.len().cmp(&a.len()).then(b.specificity().cmp(&a.specificity())).then(a.start.cmp(&b.start)));
    let mut kept: BTreeMap<usize, Finding> = BTreeMap::new();
    for f in found {
        if f.start >= f.end {
            continue;
        }
        // Kept findings never overlap, so only the last one starting before `f.end` can overlap `f`.
        if kept.range(..f.end).next_back().is_some_and(|(_, k)| k.end > f.start) {
            continue;
        }
        kept.insert(f.start, f);
    }
    kept.into_values().collect()
}

fn regex(pattern: &str) -> Regex {
    Regex::new(pattern).expect("valid regex")
}

fn pii_detail(pii: PiiType, matched: &str) -> &'static str {
    match pii {
        PiiType::Email => "email address",
        PiiType::Phone => "phone number",
        PiiType::CreditCard => "credit card number (Luhn-valid)",
        PiiType::Iban => "IBAN (mod-97 valid)",
        PiiType::NationalId if matched.starts_with(|c: char| c.is_ascii_digit()) => "US Social Security number",
        PiiType::NationalId => "UK National Insurance number",
        PiiType::ApiKey => api_key_detail(matched),
    }
}

fn api_key_detail(key: &str) -> &'static str {
    const BY_PREFIX: &[(&str, &str)] = &[
        ("sk_live_", "Stripe secret key"),
        ("rk_live_", "Stripe restricted key"),
        ("sk-", "OpenAI API key"),
        ("AKIA", "AWS access key ID"),
        ("ASIA", "AWS temporary access key ID"),
        ("github_pat_", "GitHub token"),
        ("gh", "GitHub token"),
        ("xox", "Slack token"),
        ("AIza", "Google API key"),
        ("eyJ", "JSON Web Token"),
    ];
    BY_PREFIX.iter().find(|(prefix, _)| key.starts_with(prefix)).map_or("bearer token", |&(_, detail)| detail)
}

/// A form of the PII that shows what it was without disclosing it.
fn mask(pii: PiiType, matched: &str) -> String {
    match pii {
        PiiType::Email => match matched.rsplit_once('@') {
            Some((local, domain)) => {
                format!("{}***@{domain}", local.chars().next().map(String::from).unwrap_or_default())
            }
            None => mask_alnum(matched, 0, 0),
        },
        PiiType::CreditCard => {
            let digits: Vec<char> = matched.chars().filter(char::is_ascii_digit).collect();
            let last4: String = digits[digits.len().saturating_sub(4)..].iter().collect();
            format!("**** **** **** {last4}")
        }
        PiiType::Phone => mask_alnum(matched, 0, 2),
        PiiType::Iban => mask_alnum(matched, 2, 4),
        PiiType::NationalId if matched.starts_with(|c: char| c.is_ascii_digit()) => mask_alnum(matched, 0, 4),
        PiiType::NationalId => mask_alnum(matched, 2, 0),
        PiiType::ApiKey => format!("{}…", matched.chars().take(4).collect::<String>()),
    }
}

/// Replaces ASCII letters and digits with `*`, except the first `keep_first` and last
/// `keep_last` of them; separators stay so the shape is recognisable.
fn mask_alnum(s: &str, keep_first: usize, keep_last: usize) -> String {
    let total = s.chars().filter(char::is_ascii_alphanumeric).count();
    let (keep_first, keep_last) = if keep_first + keep_last >= total { (0, 0) } else { (keep_first, keep_last) };
    let mut seen = 0;
    s.chars()
        .map(|c| {
            if !c.is_ascii_alphanumeric() {
                return c;
            }
            seen += 1;
            if seen <= keep_first || seen > total - keep_last { c } else { '*' }
        })
        .collect()
}
