//! The session-token verifier: a token not signed with the secret is never accepted, whatever its
//! bytes; a signed one is accepted only within its time claims and the lifetime cap, and no claim
//! value (however extreme) makes the checks panic or overflow.
#![no_main]

use agentry_core::session_token::{self, SessionClaims, UnverifiedToken};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "fuzz-secret-0123456789";
const MAX_LIFETIME: i64 = 30 * 24 * 3600;

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    /// Bytes presented as a token as they are.
    raw: &'a str,
    iat: i64,
    exp: i64,
    nbf: Option<i64>,
    now: i64,
    user: &'a str,
    flip: Option<(u16, u8)>,
}

fuzz_target!(|input: Input| {
    // Anything a client sends: never accepted without the secret.
    if let Ok(token) = UnverifiedToken::parse(input.raw) {
        assert!(token.verify(SECRET, input.now, MAX_LIFETIME).is_err(), "{:?} verified", input.raw);
    }
    // A token signed with the secret, with any claims.
    let mut claims = SessionClaims::new(&agentry_core::Scope::default_scope(), input.user, "entity");
    claims.iat = input.iat;
    claims.exp = input.exp;
    claims.nbf = input.nbf;
    let Ok(mut token) = session_token::sign(SECRET, &claims) else { return };
    if let Some((at, bit)) = input.flip {
        // One changed byte of a signed token: refused unless the change is a no-op.
        let mut bytes = token.clone().into_bytes();
        let at = usize::from(at) % bytes.len();
        bytes[at] ^= 1 << (bit % 7);
        let Ok(changed) = String::from_utf8(bytes) else { return };
        if changed.trim() == token.trim() {
            return;
        }
        token = changed;
    }
    let Ok(parsed) = UnverifiedToken::parse(&token) else { return };
    if let Ok(verified) = parsed.verify(SECRET, input.now, MAX_LIFETIME) {
        assert!(input.flip.is_none(), "a changed token {token:?} verified");
        assert!(verified.exp >= input.now, "expired token accepted: {verified:?} at {}", input.now);
        assert!(i128::from(verified.exp) - i128::from(verified.iat) <= i128::from(MAX_LIFETIME), "{verified:?}");
        assert!(
            i128::from(verified.nbf.unwrap_or(i64::MIN).max(verified.iat))
                <= i128::from(input.now) + i128::from(session_token::IAT_SKEW_SECONDS),
            "not yet valid token accepted: {verified:?}"
        );
    }
});
