//! Prompt-injection phrases behind [`super::scan`].

use std::sync::LazyLock;

use regex::Regex;

use super::{Finding, regex};

/// Patterns run on an ASCII-lowercased copy of the text (same byte offsets), so they are written
/// in lower case. Where a pattern needs context before the phrase (line or sentence start), the
/// phrase itself is the group `m`. Each is narrow on purpose: "ignore the typo", "ignore my
/// previous instructions" or "enable developer mode on my phone" are ordinary requests.
const INJECTION_SOURCES: &[(&str, &str)] = &[
    (
        "ignore_previous_instructions",
        r"\b(?:ignore|disregard|forget|bypass)\s+(?:(?:all|any|every|each)\s+(?:of\s+)?)?(?:(?:the|your|these|those)\s+)?(?:(?:previous|prior|above|earlier|preceding|foregoing|former|original|initial|system|safety)\s+)+(?:instructions?|rules|prompts?|directions|directives|guidelines|commands|constraints|guardrails|programming)\b",
    ),
    (
        "ignore_previous_instructions",
        r"\b(?:ignore|disregard|forget)\s+(?:all\s+|any\s+)?(?:(?:the|your)\s+)?(?:instructions|rules|prompts?)\s+(?:above|before\s+this|you\s+(?:were|have\s+been)\s+given)\b",
    ),
    (
        "ignore_previous_instructions",
        r"\bforget\s+everything\s+(?:above|before\s+this|you\s+(?:were|have\s+been)\s+told)\b",
    ),
    (
        "reveal_system_prompt",
        r"\b(?:reveal|show|print|output|display|repeat|recite|dump|leak|disclose|expose|tell|give|share|write\s+out|spell\s+out)\s+(?:me\s+|us\s+)?(?:(?:all|exactly|verbatim)\s+)?(?:of\s+)?(?:your\s+(?:(?:full|entire|complete|exact|original|initial|hidden|secret|internal|confidential|real)\s+)*(?:system\s+(?:prompt|message|instructions?)|(?:hidden|secret|internal|initial|original|confidential)\s+(?:prompt|instructions?|rules))|the\s+(?:(?:full|entire|complete|exact|original|initial)\s+)*(?:hidden|secret|internal|confidential)\s+(?:system\s+)?(?:prompt|instructions?|rules))\b",
    ),
    (
        "reveal_system_prompt",
        r"\bwhat(?:'s|\s+is|\s+are|\s+was|\s+were)\s+your\s+(?:system\s+(?:prompt|message|instructions?)|(?:hidden|secret|internal|initial|original)\s+(?:prompt|instructions?|rules))\b",
    ),
    ("reveal_system_prompt", r"\brepeat\s+(?:everything|all|the\s+(?:text|words|lines))\s+(?:above|before\s+this)\b"),
    (
        "role_override",
        r"\byou\s+are\s+now\s+(?:dan|stan|dude|jailbroken|unrestricted|unfiltered|uncensored|free\s+from\s+(?:all\s+|any\s+)?(?:restrictions|rules|guidelines)|no\s+longer\s+bound|an?\s+(?:unrestricted|unfiltered|uncensored|jailbroken)|in\s+(?:developer|god|dan|jailbreak|unrestricted)\s+mode)\b",
    ),
    (
        "role_override",
        r"\b(?:act|behave|respond|answer|operate)\s+(?:as|like)\b[^.!?\n]{0,80}?\bwithout\s+(?:any\s+)?(?:restrictions|limitations|filters|filtering|censorship|rules|guidelines|safeguards|guardrails|(?:ethical|moral)\s+(?:guidelines|constraints|restrictions|limits))\b",
    ),
    (
        "role_override",
        r"\b(?:pretend|imagine)\s+(?:that\s+)?you\s+(?:have\s+no|are\s+not\s+bound\s+by|are\s+free\s+(?:of|from)|don(?:'|’)?t\s+have(?:\s+any)?|do\s+not\s+have(?:\s+any)?)\s+(?:restrictions|rules|guidelines|filters|limitations|content\s+polic(?:y|ies)|ethical\s+guidelines)\b",
    ),
    (
        "role_override",
        r"(?m)(?:^|[.!?:]\s+)[\s*#>\[(]*(?P<m>(?:developer|dev|god|jailbreak|dan)\s+mode\s+(?:enabled|activated|on)\b)",
    ),
    (
        "role_override",
        r"\b(?:chatgpt|assistant|ai|model|gpt|bot|you)\s+(?:with|in)\s+(?:developer|god|jailbreak|dan)\s+mode\s+(?:enabled|activated)\b",
    ),
    ("role_override", r"\b(?:enable|activate|enter|switch\s+to)\s+(?:god|jailbreak|dan|unrestricted)\s+mode\b"),
    (
        "new_instructions",
        r"(?m)(?:^|[.!?]\s+)[\s*#>\[(]*(?P<m>(?:new|updated|revised|real|actual|true|override)\s+(?:system\s+)?instructions?\s*:)",
    ),
    (
        "new_instructions",
        r"(?m)(?:^|[.!?]\s+)[\s*#>\[(<]*(?P<m>system\s*[\]>)]?\s*:\s*(?:you\s+(?:must|will|should|are\s+now|have\s+to|need\s+to)|ignore|disregard|from\s+now\s+on|new\s+rules?)\b)",
    ),
    ("new_instructions", r"\bsystem\s+override\s*:"),
    (
        "jailbreak_token",
        r"<\|(?:im_start|im_end|im_sep|system|endoftext|begin_of_text|start_header_id|end_header_id|eot_id)\|>(?:system|assistant|user)?",
    ),
    ("jailbreak_token", r"\[/?inst\]|<</?sys>>"),
    ("jailbreak_token", r"(?m)^[ \t>]*(?P<m>#{1,6}[ \t]*system(?:[ \t]+prompt)?[ \t]*:)"),
];

static INJECTIONS: LazyLock<Vec<(&'static str, Regex)>> =
    LazyLock::new(|| INJECTION_SOURCES.iter().map(|&(name, pattern)| (name, regex(pattern))).collect());

pub(super) fn detect_injections(text: &str) -> Vec<Finding> {
    let lower = text.to_ascii_lowercase();
    let mut out = Vec::new();
    for &(name, ref re) in INJECTIONS.iter() {
        for caps in re.captures_iter(&lower) {
            if let Some(m) = caps.name("m").or_else(|| caps.get(0)) {
                out.push(Finding::injection(name, m.start(), m.end()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn all_patterns_compile() {
        assert_eq!(super::INJECTIONS.len(), super::INJECTION_SOURCES.len());
    }
}
