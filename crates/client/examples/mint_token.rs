//! Token minting on a Rust backend: sign a short-lived session token for one of your users with
//! the entity's service secret, and hand it to the browser. The token pins the scope, the user,
//! optionally `userMeta` (for `{{user.name}}` in prompts) and an agent.
//!
//! ```sh
//! AGENTRY_SERVICE_SECRET=… cargo run -p agentry-client --example mint_token -- alice
//! ```

use std::time::Duration;

use agentry_client::{Scope, SessionClaims, UserMeta, mint_session_token};

fn main() -> agentry_client::Result<()> {
    let secret = std::env::var("AGENTRY_SERVICE_SECRET")
        .map_err(|_| agentry_client::Error::Config("set AGENTRY_SERVICE_SECRET".into()))?;
    let user = std::env::args().nth(1).unwrap_or_else(|| "alice".into());
    // Scope, user and signing entity; `iat`/`exp` are set by mint_session_token. The optional
    // `userMeta` feeds `{{user.name}}` in prompts.
    let claims = SessionClaims {
        user_meta: Some(UserMeta { name: Some(user.clone()), email: None }),
        ..SessionClaims::new(&Scope::default_scope(), user, "default")
    };
    println!("{}", mint_session_token(&secret, claims, Duration::from_secs(15 * 60))?);
    Ok(())
}
