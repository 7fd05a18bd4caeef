//! Identifiers: a short type prefix and a 26-character, time-sortable body.
//!
//! The body is 48 bits of milliseconds followed by 80 random bits, in Crockford base32 (the ULID
//! layout). Within one process ids are strictly increasing: an id minted in the same millisecond
//! as the previous one is the previous one plus one, so creation order is id order.

use std::sync::Mutex;

use crate::time::Timestamp;

const CROCKFORD: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// Prefixes of the id kinds Agentry mints.
pub mod prefix {
    /// Threads.
    pub const THREAD: &str = "thr";
    /// Messages.
    pub const MESSAGE: &str = "msg";
    /// Agent versions.
    pub const AGENT_VERSION: &str = "agv";
    /// Turns.
    pub const TURN: &str = "trn";
    /// Tool calls.
    pub const TOOL_CALL: &str = "call";
    /// Approvals.
    pub const APPROVAL: &str = "apr";
    /// Artifacts.
    pub const ARTIFACT: &str = "art";
    /// API keys (the public id part, not the secret).
    pub const API_KEY: &str = "key";
    /// A budget cap.
    pub const BUDGET_CAP: &str = "cap";
    /// A model call in the usage ledger.
    pub const MODEL_CALL: &str = "mcl";
    /// A replica (one running `agentry serve`).
    pub const REPLICA: &str = "rep";
    /// A run of a background task.
    pub const RUN: &str = "run";
    /// A schedule of a background task.
    pub const SCHEDULE: &str = "sched";
    /// A batch of runs.
    pub const BATCH: &str = "batch";
}

/// The last id value minted by this process.
static LAST: Mutex<u128> = Mutex::new(0);

/// Mints a new id such as `thr_01jd4x…`.
pub fn new_id(prefix: &str) -> String {
    let mut random = [0u8; 10];
    fill_random(&mut random);
    let millis = Timestamp::now().0.max(0) as u128;
    let mut value: u128 = (millis & 0xffff_ffff_ffff) << 80;
    for (i, byte) in random.iter().enumerate() {
        value |= (*byte as u128) << (72 - 8 * i);
    }
    {
        let mut last = LAST.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if value <= *last {
            value = *last + 1;
        }
        *last = value;
    }
    let mut body = [0u8; 26];
    for (i, slot) in body.iter_mut().enumerate() {
        let shift = 125 - 5 * i as u32;
        *slot = CROCKFORD[((value >> shift) & 0x1f) as usize];
    }
    let mut id = String::with_capacity(prefix.len() + 27);
    id.push_str(prefix);
    id.push('_');
    id.extend(body.iter().map(|b| *b as char));
    id
}

/// A random secret of `bytes` bytes, hex-encoded, behind a readable prefix (e.g. `agk_…`).
pub fn new_secret(prefix: &str, bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    fill_random(&mut raw);
    let mut out = String::with_capacity(prefix.len() + 1 + bytes * 2);
    out.push_str(prefix);
    out.push('_');
    for b in raw {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Fills `buf` from the operating system's random number generator.
pub(crate) fn fill_random(buf: &mut [u8]) {
    // The OS RNG failing is not recoverable in any meaningful way; ids must stay unique.
    if let Err(err) = getrandom::fill(buf) {
        panic!("operating system random number generator failed: {err}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_prefix_and_fixed_length() {
        let id = new_id(prefix::THREAD);
        assert!(id.starts_with("thr_"));
        assert_eq!(id.len(), 4 + 26);
    }

    #[test]
    fn ids_sort_by_creation_order_even_within_a_millisecond() {
        let ids: Vec<String> = (0..1000).map(|_| new_id("x")).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }

    #[test]
    fn secrets_are_distinct_and_hex() {
        let a = new_secret("agk", 32);
        let b = new_secret("agk", 32);
        assert_ne!(a, b);
        assert_eq!(a.len(), 4 + 64);
        assert!(a[4..].chars().all(|c| c.is_ascii_hexdigit()));
    }
}
