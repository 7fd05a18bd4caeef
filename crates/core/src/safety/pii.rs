//! The PII detectors behind [`super::scan`]: each returns the byte spans it accepts, checked
//! beyond their shape (see the module above for why).

use std::sync::LazyLock;

use regex::Regex;

use super::regex;

/// Spans of `re` in `text` that `check` accepts (possibly narrowed). A rejected match is
/// retried one character later, so a bad candidate cannot hide a good one starting inside it.
fn spans(re: &Regex, text: &str, mut check: impl FnMut(usize, usize) -> Option<(usize, usize)>) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(m) = re.find_at(text, pos) {
        match check(m.start(), m.end()) {
            Some((start, end)) if end > start && end > pos => {
                out.push((start, end));
                pos = end;
            }
            _ => pos = m.start() + text[m.start()..].chars().next().map_or(1, char::len_utf8),
        }
        if pos >= text.len() {
            break;
        }
    }
    out
}

fn char_before(text: &str, at: usize) -> Option<char> {
    text[..at].chars().next_back()
}

fn char_after(text: &str, at: usize) -> Option<char> {
    text[at..].chars().next()
}

/// True when the digits starting at `start` continue a longer token or number to their left
/// (`x415…`, `12-415…`), in which case they are not a phone number on their own.
fn continues_before(text: &str, start: usize) -> bool {
    match char_before(text, start) {
        Some(c) if c.is_alphanumeric() || matches!(c, '_' | '+' | '@') => true,
        Some('.' | '-' | '/') => char_before(text, start - 1).is_some_and(|c| c.is_ascii_digit()),
        _ => false,
    }
}

/// True when the digits ending at `end` continue to their right: more word characters, a
/// dashed/dotted continuation (`…2671-88`), or a clock time (`10:30`).
fn continues_after(text: &str, end: usize) -> bool {
    match char_after(text, end) {
        Some(c) if c.is_alphanumeric() || c == '_' => true,
        Some('.' | '-' | '/' | ':') => char_after(text, end + 1).is_some_and(|c| c.is_ascii_digit()),
        _ => false,
    }
}

static EMAIL: LazyLock<Regex> =
    LazyLock::new(|| regex(r"\b\w[\w.%+\-]{0,63}@(?:\w(?:[\w\-]{0,61}\w)?\.)+[A-Za-z]{2,24}\b"));

/// Retina assets are named `icon@2x.png`; no real TLD is an image extension.
const FILE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico", "tif", "tiff", "avif"];

pub(super) fn detect_emails(text: &str) -> Vec<(usize, usize)> {
    spans(&EMAIL, text, |start, end| {
        let tld = text[start..end].rsplit('.').next()?.to_ascii_lowercase();
        if FILE_EXTENSIONS.contains(&tld.as_str()) {
            return None;
        }
        // `git@github.com:org/repo` is an SSH remote, not somebody's address.
        if char_after(text, end) == Some(':') && char_after(text, end + 1).is_some_and(|c| !c.is_whitespace()) {
            return None;
        }
        Some((start, end))
    })
}

/// `+CC …`: the plus sign is a strong signal, so separators are optional.
static PHONE_INTL: LazyLock<Regex> =
    LazyLock::new(|| regex(r"\+[1-9][0-9]{0,3}(?:[ .\-]?(?:\([0-9]{1,5}\)|[0-9]{1,8})){1,8}"));
/// North American `(415) 555-2671`, `415-555-2671`, `1-800-555-0199`: area and exchange codes
/// never start with 0 or 1, which rules out most order numbers.
static PHONE_NANP: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"(?:\+?1[ .\-]?)?(?:\([2-9][0-9]{2}\)[ .\-]?|[2-9][0-9]{2}[ .\-])[2-9][0-9]{2}[ .\-][0-9]{4}")
});
/// National forms with a trunk `0` (`020 7946 0958`, `06 12 34 56 78`, `030/12345678`); a
/// separator is required, since bare digit runs are as often ids as phone numbers.
static PHONE_TRUNK: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"(?:\(0[1-9][0-9]{0,4}\)[ .\-]?|0[1-9][0-9]{0,4}[ .\-/])[0-9]{2,8}(?:[ .\-][0-9]{2,8}){0,4}")
});
static DATE_PREFIX: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"^(?:(?:19|20)[0-9]{2}[ .\-/][0-9]{1,2}[ .\-/][0-9]{1,2}|[0-9]{1,2}[.\-/][0-9]{1,2}[.\-/](?:19|20)[0-9]{2})")
});

pub(super) fn detect_phones(text: &str) -> Vec<(usize, usize)> {
    let mut out = spans(&PHONE_INTL, text, |s, e| {
        // `+1` is North America's 10-digit plan: more digits are a following number, not part of it.
        let nanp = text[s..e].starts_with("+1") && text[s + 2..e].starts_with([' ', '.', '-', '(']);
        phone_span(text, s, e, if nanp { 11..=11 } else { 10..=15 }, false)
    });
    out.extend(spans(&PHONE_NANP, text, |s, e| phone_span(text, s, e, 10..=11, false)));
    out.extend(spans(&PHONE_TRUNK, text, |s, e| phone_span(text, s, e, 10..=12, true)));
    out
}

/// The longest prefix of the candidate `start..end` (ending after a digit group) that is a
/// phone number: the patterns are greedy and may have swallowed a following number. With
/// `space_joins`, digits then a space before the candidate mean it is the tail of a longer
/// space-grouped number (an IBAN, an account number), since such phone forms use spaces too.
fn phone_span(
    text: &str,
    start: usize,
    end: usize,
    digit_count: std::ops::RangeInclusive<usize>,
    space_joins: bool,
) -> Option<(usize, usize)> {
    let joined_by_space = space_joins
        && char_before(text, start) == Some(' ')
        && char_before(text, start - 1).is_some_and(|c| c.is_ascii_digit());
    if joined_by_space || continues_before(text, start) || DATE_PREFIX.is_match(&text[start..end]) {
        return None;
    }
    let bytes = text.as_bytes();
    let mut digits = 0;
    let mut group_ends = Vec::new();
    for i in start..end {
        if bytes[i].is_ascii_digit() {
            digits += 1;
            if i + 1 == end || !bytes[i + 1].is_ascii_digit() {
                group_ends.push((i + 1, digits));
            }
        }
    }
    group_ends
        .into_iter()
        .rev()
        .find(|&(e, n)| digit_count.contains(&n) && !continues_after(text, e))
        .map(|(e, _)| (start, e))
}

/// A maximal run of digit groups joined by single spaces or dashes; cards are looked for inside.
static DIGIT_RUN: LazyLock<Regex> = LazyLock::new(|| regex(r"\b[0-9]+(?:[ \-][0-9]+)*\b"));

struct DigitGroup {
    start: usize,
    end: usize,
    sep_before: Option<u8>,
}

pub(super) fn detect_cards(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for run in DIGIT_RUN.find_iter(text) {
        let groups = digit_groups(text, run.start(), run.end());
        let mut i = 0;
        while i < groups.len() {
            match longest_card(text, &groups[i..]) {
                Some(n) => {
                    out.push((groups[i].start, groups[i + n - 1].end));
                    i += n;
                }
                None => i += 1,
            }
        }
    }
    out
}

fn digit_groups(text: &str, start: usize, end: usize) -> Vec<DigitGroup> {
    let bytes = text.as_bytes();
    let mut groups = Vec::new();
    let mut i = start;
    let mut sep_before = None;
    while i < end {
        if bytes[i].is_ascii_digit() {
            let group_start = i;
            while i < end && bytes[i].is_ascii_digit() {
                i += 1;
            }
            groups.push(DigitGroup { start: group_start, end: i, sep_before });
        } else {
            sep_before = Some(bytes[i]);
            i += 1;
        }
    }
    groups
}

/// How many leading groups of `groups` form the longest valid card number, if any.
fn longest_card(text: &str, groups: &[DigitGroup]) -> Option<usize> {
    let mut best = None;
    let mut total = 0;
    for (n, group) in groups.iter().enumerate() {
        total += group.end - group.start;
        if total > 19 {
            break;
        }
        if total >= 13 && card_layout_ok(&groups[..=n]) {
            let digits: Vec<u8> =
                text[groups[0].start..group.end].bytes().filter(u8::is_ascii_digit).map(|b| b - b'0').collect();
            if luhn_valid(&digits) && known_issuer(&digits) {
                best = Some(n + 1);
            }
        }
    }
    best
}

/// Printed cards are one block, or 4-digit-led groups of 3–6 digits with one kind of separator
/// (`4242 4242 4242 4242`, `3782 822463 10005`); anything else is some other number.
fn card_layout_ok(groups: &[DigitGroup]) -> bool {
    let [first, rest @ ..] = groups else { return false };
    if rest.is_empty() {
        return true;
    }
    let sep = rest[0].sep_before;
    first.end - first.start == 4 && rest.iter().all(|g| g.sep_before == sep && (3..=6).contains(&(g.end - g.start)))
}

fn luhn_valid(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 { if d * 2 > 9 { d * 2 - 9 } else { d * 2 } } else { d }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Issuer prefixes (IIN ranges) and lengths of the major networks: a Luhn-valid number outside
/// them is far more likely an id than a card.
fn known_issuer(digits: &[u8]) -> bool {
    let prefix = |k: usize| digits.iter().take(k).fold(0u32, |acc, &d| acc * 10 + u32::from(d));
    let len = digits.len();
    match prefix(1) {
        4 => matches!(len, 13 | 16 | 19),
        2 => (2221..=2720).contains(&prefix(4)) && len == 16,
        5 => match prefix(2) {
            51..=55 => len == 16,
            50 | 56..=58 => true,
            _ => false,
        },
        3 => match prefix(2) {
            34 | 37 => len == 15,
            36 | 38 | 39 => len >= 14,
            30 => (300..=305).contains(&prefix(3)) && len >= 14,
            35 => (3528..=3589).contains(&prefix(4)) && len >= 16,
            _ => false,
        },
        6 => prefix(4) == 6011 || (644..=649).contains(&prefix(3)) || matches!(prefix(2), 62 | 65 | 67),
        _ => false,
    }
}

/// Electronic form (`DE89370400440532013000`) or printed in groups of four (`DE89 3704 …`).
static IBAN: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"\b[A-Za-z]{2}[0-9]{2}(?:[A-Za-z0-9]{11,30}|(?: [A-Za-z0-9]{4}){2,7}(?: [A-Za-z0-9]{1,4})?)\b")
});

pub(super) fn detect_ibans(text: &str) -> Vec<(usize, usize)> {
    spans(&IBAN, text, |start, end| {
        // The printed form's last group may be the next word ("… 7034 from"): try shorter.
        let ends = text[start..end].match_indices(' ').map(|(i, _)| start + i).chain([end]);
        let mut ends: Vec<usize> = ends.collect();
        ends.reverse();
        ends.into_iter().find(|&e| iban_valid(&text[start..e])).map(|e| (start, e))
    })
}

fn iban_valid(candidate: &str) -> bool {
    let compact: String = candidate.chars().filter(|c| *c != ' ').map(|c| c.to_ascii_uppercase()).collect();
    let Some(country) = compact.get(..2) else { return false };
    if iban_length(country) != Some(compact.len()) {
        return false;
    }
    let (head, tail) = compact.split_at(4);
    let mut remainder = 0u32;
    for c in tail.chars().chain(head.chars()) {
        let Some(value) = c.to_digit(36) else { return false };
        remainder = if value < 10 { (remainder * 10 + value) % 97 } else { (remainder * 100 + value) % 97 };
    }
    remainder == 1
}

/// IBAN length by country (SWIFT IBAN registry). Countries not listed are not detected, which
/// keeps random `XX00…` tokens out.
fn iban_length(country: &str) -> Option<usize> {
    Some(match country {
        "NO" => 15,
        "BE" => 16,
        "DK" | "FI" | "FO" | "GL" | "NL" => 18,
        "MK" | "SI" => 19,
        "AT" | "BA" | "EE" | "KZ" | "LT" | "LU" | "XK" => 20,
        "CH" | "HR" | "LI" | "LV" => 21,
        "BG" | "BH" | "CR" | "DE" | "GB" | "GE" | "IE" | "ME" | "RS" => 22,
        "AE" | "GI" | "IL" | "IQ" => 23,
        "AD" | "CZ" | "ES" | "MD" | "PK" | "RO" | "SA" | "SE" | "SK" | "TN" | "VG" => 24,
        "PT" => 25,
        "IS" | "TR" => 26,
        "FR" | "GR" | "IT" | "MC" | "MR" | "SM" => 27,
        "AL" | "AZ" | "BY" | "CY" | "DO" | "GT" | "HU" | "LB" | "PL" => 28,
        "BR" | "EG" | "PS" | "QA" | "UA" => 29,
        "JO" | "KW" | "MU" => 30,
        "MT" | "SC" => 31,
        "LC" => 32,
        _ => return None,
    })
}

static SSN: LazyLock<Regex> = LazyLock::new(|| regex(r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b"));
static NINO: LazyLock<Regex> = LazyLock::new(|| regex(r"\b[A-Za-z]{2} ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-Da-d]\b"));

pub(super) fn detect_national_ids(text: &str) -> Vec<(usize, usize)> {
    let mut out = spans(&SSN, text, |start, end| {
        let ok = ssn_valid(&text[start..end]) && !continues_before(text, start) && !continues_after(text, end);
        ok.then_some((start, end))
    });
    out.extend(spans(&NINO, text, |start, end| nino_valid(&text[start..end]).then_some((start, end))));
    out
}

/// SSA never issues area 000, 666 or 900–999, group 00 or serial 0000; two numbers famous from
/// advertising are void too.
fn ssn_valid(ssn: &str) -> bool {
    let mut parts = ssn.split('-');
    let (Some(area), Some(group), Some(serial)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    !(area == "000" || area == "666" || area.starts_with('9'))
        && group != "00"
        && serial != "0000"
        && ssn != "078-05-1120"
        && ssn != "219-09-9999"
}

/// HMRC rules: first letter not D F I Q U V, second not D F I O Q U V, prefixes BG GB KN NK NT
/// TN ZZ unused, suffix A–D; written compact, `AB 12 34 56 C` or `AB 123456 C`. This excludes
/// HMRC's own placeholder `QQ 12 34 56 C`.
fn nino_valid(nino: &str) -> bool {
    let spaces: Vec<usize> = nino.match_indices(' ').map(|(i, _)| i).collect();
    if !(spaces.is_empty() || spaces == [2, 5, 8, 11] || spaces == [2, 9]) {
        return false;
    }
    let upper = nino.to_ascii_uppercase();
    let mut letters = upper.chars();
    let (Some(first), Some(second)) = (letters.next(), letters.next()) else { return false };
    !"DFIQUV".contains(first)
        && !"DFIOQUV".contains(second)
        && !matches!(&upper[..2], "BG" | "GB" | "KN" | "NK" | "NT" | "TN" | "ZZ")
}

#[derive(Clone, Copy)]
enum KeyCheck {
    /// Accept the match as is.
    Shape,
    /// Random keys mix letters and digits; prose joined by dashes does not.
    Mixed,
    /// AWS documentation's sample key ends in `EXAMPLE`.
    NotAwsExample,
    /// The fixed-length body must not run on into more key characters.
    EndsThere,
    /// Only the token after `Bearer`, which must itself look random.
    BearerToken,
}

static API_KEYS: LazyLock<Vec<(Regex, KeyCheck)>> = LazyLock::new(|| {
    [
        (r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}", KeyCheck::Mixed),
        (r"\b(?:sk|rk)_live_[A-Za-z0-9]{16,}", KeyCheck::Shape),
        (r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b", KeyCheck::NotAwsExample),
        (r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b", KeyCheck::Shape),
        (r"\bgithub_pat_[A-Za-z0-9_]{22,255}\b", KeyCheck::Shape),
        (r"\bxox[abprs]-[A-Za-z0-9\-]{10,}", KeyCheck::Mixed),
        (r"\bAIza[0-9A-Za-z_\-]{35}", KeyCheck::EndsThere),
        (r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}", KeyCheck::Shape),
        (r"\b[Bb]earer[ \t]+[A-Za-z0-9._~+/\-]{20,}=*", KeyCheck::BearerToken),
    ]
    .into_iter()
    .map(|(pattern, check)| (regex(pattern), check))
    .collect()
});

fn is_mixed(s: &str) -> bool {
    s.bytes().any(|b| b.is_ascii_digit()) && s.bytes().any(|b| b.is_ascii_alphabetic())
}

pub(super) fn detect_api_keys(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for (re, check) in API_KEYS.iter() {
        // No retry inside a rejected candidate: a key is a whole token, and retrying inside an
        // unbounded one (`sk-sk-sk-…`) would rescan it once per position.
        out.extend(re.find_iter(text).filter_map(|m| {
            let (start, end) = (m.start(), m.end());
            let m = m.as_str();
            let ok = match check {
                KeyCheck::Shape => true,
                KeyCheck::Mixed => is_mixed(m.split_once('-').map_or(m, |(_, body)| body)),
                KeyCheck::NotAwsExample => !m.ends_with("EXAMPLE"),
                KeyCheck::EndsThere => {
                    !char_after(text, end).is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                }
                KeyCheck::BearerToken => {
                    let token_at = m.find([' ', '\t']).map_or(end, |i| start + i);
                    let token_start = token_at + text[token_at..end].len() - text[token_at..end].trim_start().len();
                    return is_mixed(&text[token_start..end]).then_some((token_start, end));
                }
            };
            ok.then_some((start, end))
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_patterns_compile() {
        assert!(!API_KEYS.is_empty());
        for re in
            [&*EMAIL, &*PHONE_INTL, &*PHONE_NANP, &*PHONE_TRUNK, &*DATE_PREFIX, &*DIGIT_RUN, &*IBAN, &*SSN, &*NINO]
        {
            assert!(!re.as_str().is_empty());
        }
    }
}
