//! Task files (triggers, retries, cron schedules with time zones): any text is refused or read,
//! never a panic; a task that validates keeps its meaning through the stored JSON.
#![no_main]

use agentry_core::task::TaskSpec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let Ok(spec) = toml::from_str::<TaskSpec>(text) else { return };
    if spec.validate().is_err() {
        return;
    }
    let json = serde_json::to_string(&spec).expect("a valid task serialises");
    let back: TaskSpec = serde_json::from_str(&json).expect("the stored form reads back");
    assert_eq!(back, spec, "{json}");
});
