//! Agent files: any text is refused with a message or read, never a panic (validation included);
//! a spec that validates keeps its meaning through the JSON the store keeps.
#![no_main]

use agentry_core::AgentSpec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let Ok(spec) = toml::from_str::<AgentSpec>(text) else { return };
    let problems = spec.problems();
    if !problems.is_empty() {
        for problem in problems {
            assert!(!problem.to_string().is_empty());
        }
        return;
    }
    let json = serde_json::to_string(&spec).expect("a valid spec serialises");
    let back: AgentSpec = serde_json::from_str(&json).expect("the stored form reads back");
    assert_eq!(back, spec, "{json}");
});
