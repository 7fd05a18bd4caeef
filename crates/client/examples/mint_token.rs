//! Token minting on a Rust backend: sign a short-lived session token for one of your users with
//! the entity's service secret, and hand it to the browser. The token pins the scope, the user,
//! optionally `userMeta` (for `{{user.name}}` in prompts) and an agent.
//!
//! ```sh
//! AGENTRY_SERVICE_SECRET=… cargo run -p agentry-client --example mint_token -- alice
//! ```

use std::time::Duration;

use agentry_client::{SessionClaims, UserMeta, mint_session_token};

fn main() -> agentry_client::Result<()> {
    let secret = std::env::var("AGENTRY_SERVICE_SECRET")
        .map_err(|_| agentry_client::Error::Config("set AGENTRY_SERVICE_SECRET".into()))?;
    let user = std::env::args().nth(1).unwrap_or_else(|| "alice".into());
    let claims = SessionClaims {
        organization_id: "default".into(),
        project_id: "default".into(),
        environment_id: "default".into(),
        user_id: user.clone(),
        entity_id: Some("default".into()),
        iat: 0, // set by mint_session_token
        exp: 0, // set by mint_session_token
        user_meta: Some(UserMeta { name: Some(user), email: None }),
        agent_id: None,
        user_token: None,
    };
    println!("{}", mint_session_token(&secret, claims, Duration::from_secs(15 * 60))?);
    Ok(())
}
