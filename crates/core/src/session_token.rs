//! Session tokens: compact HS256 JWTs exactly as `@platosdev/token-mint` produces them.
//!
//! `base64url(header).base64url(payload).base64url(HMAC-SHA256(header "." payload, secret))`,
//! no padding, header `{"alg":"HS256","typ":"JWT"}`. Verification is two-step because the
//! signing secret depends on a claim (`entityId`): [`UnverifiedToken::parse`] reads the claims,
//! the caller looks up the entity's secret, then [`UnverifiedToken::verify`] checks the
//! signature and the expiry.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::scope::UserMeta;

type HmacSha256 = Hmac<Sha256>;

/// Shortest service secret accepted for signing (the token-mint rule).
pub const MIN_SECRET_LEN: usize = 16;
/// Default token lifetime.
pub const DEFAULT_TTL_SECONDS: i64 = 3600;
/// Shortest lifetime `mint` accepts.
pub const MIN_TTL_SECONDS: i64 = 60;
/// Longest lifetime `mint` accepts (7 days).
pub const MAX_TTL_SECONDS: i64 = 7 * 24 * 3600;
/// How far in the future `iat` may lie (clock skew allowance).
pub const IAT_SKEW_SECONDS: i64 = 60;

const HEADER_JSON: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// The claims of a session token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionClaims {
    /// Scope: organization.
    pub organization_id: String,
    /// Scope: project.
    pub project_id: String,
    /// Scope: environment.
    pub environment_id: String,
    /// The acting end user.
    pub user_id: String,
    /// The entity whose service secret signed the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_id: Option<String>,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expiry, Unix seconds; the token is refused once `now > exp`.
    pub exp: i64,
    /// Not before, Unix seconds: refused until then (with the `iat` skew allowance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Optional `{name, email}` of the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_meta: Option<UserMeta>,
    /// Pins the token to one agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// Opaque per-user proof forwarded to tool backends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_token: Option<String>,
}

impl SessionClaims {
    /// Claims for `user_id` in `scope`, signed by `entity_id`, with no optional claims; `iat` and
    /// `exp` are set by [`mint`].
    pub fn new(scope: &crate::Scope, user_id: impl Into<String>, entity_id: impl Into<String>) -> Self {
        SessionClaims {
            organization_id: scope.organization_id.clone(),
            project_id: scope.project_id.clone(),
            environment_id: scope.environment_id.clone(),
            user_id: user_id.into(),
            entity_id: Some(entity_id.into()),
            iat: 0,
            exp: 0,
            user_meta: None,
            agent_id: None,
            user_token: None,
            nbf: None,
        }
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url segments of JSON.
    #[error("session token is malformed: {0}")]
    Malformed(&'static str),
    /// The header names an algorithm other than HS256 (including `none`).
    #[error("session token algorithm `{0}` is not accepted (only HS256)")]
    UnsupportedAlgorithm(String),
    /// A mandatory claim is missing or has the wrong type.
    #[error("session token claims are invalid: {0}")]
    InvalidClaims(String),
    /// The signature does not match the entity's secret.
    #[error("session token signature is invalid")]
    BadSignature,
    /// `exp` has passed.
    #[error("session token has expired")]
    Expired,
    /// `iat` lies in the future beyond the allowed skew.
    #[error("session token is not valid yet (iat or nbf in the future)")]
    NotYetValid,
    /// The signing secret is too short.
    #[error("service secret must be at least {MIN_SECRET_LEN} characters")]
    SecretTooShort,
    /// `exp - iat` is longer than the server accepts.
    #[error("session token lives longer than the {0} seconds this server accepts (exp - iat)")]
    TooLong(i64),
    /// The requested lifetime is outside the accepted range.
    #[error("ttl must be between {MIN_TTL_SECONDS} and {MAX_TTL_SECONDS} seconds")]
    TtlOutOfRange,
}

/// Signs `claims` with `secret`. `claims.iat`/`exp` are used as given.
pub fn sign(secret: &str, claims: &SessionClaims) -> Result<String, TokenError> {
    if secret.len() < MIN_SECRET_LEN {
        return Err(TokenError::SecretTooShort);
    }
    let payload = serde_json::to_vec(claims).map_err(|e| TokenError::InvalidClaims(e.to_string()))?;
    let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(HEADER_JSON), URL_SAFE_NO_PAD.encode(payload));
    let signature = URL_SAFE_NO_PAD.encode(hmac(secret, signing_input.as_bytes()).finalize().into_bytes());
    Ok(format!("{signing_input}.{signature}"))
}

/// Mints a token valid from `now_seconds` for `ttl_seconds` (60 s … 7 days), like token-mint.
pub fn mint(secret: &str, mut claims: SessionClaims, ttl_seconds: i64, now_seconds: i64) -> Result<String, TokenError> {
    if !(MIN_TTL_SECONDS..=MAX_TTL_SECONDS).contains(&ttl_seconds) {
        return Err(TokenError::TtlOutOfRange);
    }
    claims.iat = now_seconds;
    claims.exp = now_seconds + ttl_seconds;
    sign(secret, &claims)
}

/// A token whose claims have been read but whose signature has not been checked yet.
#[derive(Debug)]
pub struct UnverifiedToken {
    signing_input: String,
    signature: Vec<u8>,
    claims: SessionClaims,
}

impl UnverifiedToken {
    /// Splits and decodes a compact JWT, refusing any algorithm but HS256.
    pub fn parse(token: &str) -> Result<Self, TokenError> {
        let mut parts = token.trim().split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed("expected three dot-separated segments"));
        };
        let header: serde_json::Value = decode_json(header, HEADER)?;
        let alg = header.get("alg").and_then(|a| a.as_str()).unwrap_or("");
        if alg != "HS256" {
            return Err(TokenError::UnsupportedAlgorithm(alg.to_owned()));
        }
        let claims_value: serde_json::Value = decode_json(payload, PAYLOAD)?;
        let claims: SessionClaims =
            serde_json::from_value(claims_value).map_err(|e| TokenError::InvalidClaims(e.to_string()))?;
        for (name, value) in [
            ("organizationId", &claims.organization_id),
            ("projectId", &claims.project_id),
            ("environmentId", &claims.environment_id),
            ("userId", &claims.user_id),
        ] {
            if value.is_empty() {
                return Err(TokenError::InvalidClaims(format!("`{name}` is empty")));
            }
        }
        if claims.entity_id.as_deref().is_none_or(str::is_empty) {
            return Err(TokenError::InvalidClaims("`entityId` is missing".into()));
        }
        let signature =
            URL_SAFE_NO_PAD.decode(signature).map_err(|_| TokenError::Malformed("signature is not base64url"))?;
        let signing_input = token.trim()[..header_payload_len(token.trim())].to_owned();
        Ok(UnverifiedToken { signing_input, signature, claims })
    }

    /// The claims, not yet trustworthy: use them only to find the signing secret.
    pub fn unverified_claims(&self) -> &SessionClaims {
        &self.claims
    }

    /// Checks the signature against `secret` (constant time) and the time claims against
    /// `now_seconds`: `exp`, `iat` and `nbf` (with [`IAT_SKEW_SECONDS`]), and a lifetime
    /// (`exp - iat`) of at most `max_lifetime_seconds`.
    pub fn verify(
        self,
        secret: &str,
        now_seconds: i64,
        max_lifetime_seconds: i64,
    ) -> Result<SessionClaims, TokenError> {
        hmac(secret, self.signing_input.as_bytes())
            .verify_slice(&self.signature)
            .map_err(|_| TokenError::BadSignature)?;
        if now_seconds > self.claims.exp {
            return Err(TokenError::Expired);
        }
        let not_before = self.claims.nbf.unwrap_or(i64::MIN).max(self.claims.iat);
        if not_before > now_seconds.saturating_add(IAT_SKEW_SECONDS) {
            return Err(TokenError::NotYetValid);
        }
        // Saturating: an `iat` far in the past and an `exp` far ahead must not wrap to a short
        // lifetime (found by the `session_token` fuzz target).
        if self.claims.exp.saturating_sub(self.claims.iat) > max_lifetime_seconds {
            return Err(TokenError::TooLong(max_lifetime_seconds));
        }
        Ok(self.claims)
    }
}

fn header_payload_len(token: &str) -> usize {
    token.rfind('.').unwrap_or(token.len())
}

fn hmac(secret: &str, data: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match HmacSha256::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
    };
    mac.update(data);
    mac
}

/// The refusal messages of one token segment.
struct Segment {
    not_base64: &'static str,
    not_json: &'static str,
}

const HEADER: Segment = Segment { not_base64: "header is not base64url", not_json: "header is not a JSON object" };
const PAYLOAD: Segment = Segment { not_base64: "payload is not base64url", not_json: "payload is not a JSON object" };

fn decode_json(segment: &str, kind: Segment) -> Result<serde_json::Value, TokenError> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).map_err(|_| TokenError::Malformed(kind.not_base64))?;
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(value) if value.is_object() => Ok(value),
        _ => Err(TokenError::Malformed(kind.not_json)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";
    const NOW: i64 = 1_800_000_000;

    fn claims() -> SessionClaims {
        SessionClaims {
            organization_id: "org".into(),
            project_id: "proj".into(),
            environment_id: "env".into(),
            user_id: "u1".into(),
            entity_id: Some("default".into()),
            iat: 0,
            exp: 0,
            user_meta: Some(UserMeta { name: Some("Ada".into()), email: None }),
            agent_id: None,
            user_token: None,
            nbf: None,
        }
    }

    fn verify(token: &str, secret: &str, now: i64) -> Result<SessionClaims, TokenError> {
        UnverifiedToken::parse(token)?.verify(secret, now, MAX_TTL_SECONDS)
    }

    #[test]
    fn minted_token_verifies_and_round_trips_claims() {
        let token = mint(SECRET, claims(), 3600, NOW).unwrap();
        let got = verify(&token, SECRET, NOW + 10).unwrap();
        assert_eq!(got.user_id, "u1");
        assert_eq!(got.exp, NOW + 3600);
        assert_eq!(got.user_meta.and_then(|m| m.name).as_deref(), Some("Ada"));
        let header = URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap();
        assert_eq!(header, HEADER_JSON.as_bytes());
    }

    #[test]
    fn wrong_secret_is_a_bad_signature() {
        let token = mint(SECRET, claims(), 3600, NOW).unwrap();
        assert_eq!(verify(&token, "another-secret-of-length", NOW), Err(TokenError::BadSignature));
    }

    #[test]
    fn expired_token_is_refused() {
        let token = mint(SECRET, claims(), 60, NOW).unwrap();
        assert_eq!(verify(&token, SECRET, NOW + 61), Err(TokenError::Expired));
        assert!(verify(&token, SECRET, NOW + 60).is_ok());
    }

    #[test]
    fn tampered_claims_fail_the_signature() {
        let token = mint(SECRET, claims(), 3600, NOW).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let mut payload: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        payload["userId"] = "admin".into();
        let forged = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(payload.to_string()), parts[2]);
        assert_eq!(verify(&forged, SECRET, NOW), Err(TokenError::BadSignature));
    }

    #[test]
    fn alg_none_and_other_algorithms_are_refused() {
        let token = mint(SECRET, claims(), 3600, NOW).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        for alg in ["none", "HS512", "RS256"] {
            let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
            let forged = format!("{header}.{}.{}", parts[1], parts[2]);
            assert_eq!(UnverifiedToken::parse(&forged).err(), Some(TokenError::UnsupportedAlgorithm(alg.into())));
        }
        let unsigned = format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#), parts[1]);
        assert!(verify(&unsigned, SECRET, NOW).is_err());
    }

    #[test]
    fn missing_mandatory_claims_are_refused() {
        let mut c = claims();
        c.entity_id = None;
        let token = sign(SECRET, &c).unwrap();
        assert!(matches!(UnverifiedToken::parse(&token), Err(TokenError::InvalidClaims(_))));
        let no_exp = format!(
            "{}.{}.sig",
            URL_SAFE_NO_PAD.encode(HEADER_JSON),
            URL_SAFE_NO_PAD.encode(
                r#"{"organizationId":"o","projectId":"p","environmentId":"e","userId":"u","entityId":"d","iat":1}"#
            )
        );
        assert!(matches!(UnverifiedToken::parse(&no_exp), Err(TokenError::InvalidClaims(_))));
    }

    #[test]
    fn garbage_is_malformed() {
        for bad in ["", "a.b", "a.b.c.d", "!!!.e30.e30"] {
            assert!(matches!(UnverifiedToken::parse(bad), Err(TokenError::Malformed(_))), "{bad}");
        }
    }

    #[test]
    fn mint_enforces_secret_and_ttl_rules() {
        assert_eq!(mint("short", claims(), 3600, NOW), Err(TokenError::SecretTooShort));
        assert_eq!(mint(SECRET, claims(), 59, NOW), Err(TokenError::TtlOutOfRange));
        assert_eq!(mint(SECRET, claims(), MAX_TTL_SECONDS + 1, NOW), Err(TokenError::TtlOutOfRange));
    }

    #[test]
    fn iat_far_in_the_future_is_refused() {
        let token = mint(SECRET, claims(), 3600, NOW + 600).unwrap();
        assert_eq!(verify(&token, SECRET, NOW), Err(TokenError::NotYetValid));
    }

    #[test]
    fn nbf_in_the_future_and_overlong_lifetimes_are_refused() {
        let future = SessionClaims { iat: NOW, exp: NOW + 3600, nbf: Some(NOW + 600), ..claims() };
        let token = sign(SECRET, &future).unwrap();
        assert!(matches!(verify(&token, SECRET, NOW), Err(TokenError::NotYetValid)));
        assert!(verify(&token, SECRET, NOW + 600).is_ok(), "valid from nbf on");
        let long = SessionClaims { iat: NOW, exp: NOW + MAX_TTL_SECONDS + 1, ..claims() };
        let token = sign(SECRET, &long).unwrap();
        assert!(matches!(verify(&token, SECRET, NOW), Err(TokenError::TooLong(_))));
        let parsed = UnverifiedToken::parse(&token).unwrap();
        assert!(parsed.verify(SECRET, NOW, 30 * 86_400).is_ok(), "the limit is the server's to choose");
    }

    #[test]
    fn a_lifetime_too_long_to_subtract_is_refused_not_wrapped() {
        // exp - iat overflows an i64; wrapped it was negative and the token was accepted forever.
        let endless = SessionClaims { iat: -4_629_950_984_639_168_517, exp: 4_665_658_569_255_796_671, ..claims() };
        let token = sign(SECRET, &endless).unwrap();
        assert!(matches!(verify(&token, SECRET, NOW), Err(TokenError::TooLong(_))));
        let far = SessionClaims { iat: i64::MAX, exp: i64::MAX, ..claims() };
        let token = sign(SECRET, &far).unwrap();
        let parsed = UnverifiedToken::parse(&token).unwrap();
        assert_eq!(parsed.verify(SECRET, i64::MAX, 3600), Ok(far), "no overflow at the edge of time");
    }
}
