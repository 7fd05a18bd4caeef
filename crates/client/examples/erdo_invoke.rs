//! The Erdo surface: invoke a bot and print its answer as it streams, then mint a scoped token
//! for one of your users and continue in a thread with it.
//!
//! ```sh
//! export AGENTRY_API_KEY=…   # an operator API key (`agentry serve` prints or takes one)
//! cargo run -p agentry-client --example erdo_invoke -- default "What can you do?"
//! ```
//!
//! Optional: `AGENTRY_SERVER` (default `http://127.0.0.1:3100`), `ERDO_ORGANIZATION` (sent as
//! `X-Organization-ID`; default: the key's own).

use agentry_client::{Client, Error, InvokeParams, TokenParams};
use futures_util::StreamExt as _;

#[tokio::main]
async fn main() -> agentry_client::Result<()> {
    let base_url = std::env::var("AGENTRY_SERVER").unwrap_or_else(|_| "http://127.0.0.1:3100".into());
    let api_key = std::env::var("AGENTRY_API_KEY").map_err(|_| Error::Config("set AGENTRY_API_KEY".into()))?;
    let bot = std::env::args().nth(1).unwrap_or_else(|| "default".into());
    let question = std::env::args().nth(2).unwrap_or_else(|| "Hello!".into());

    let mut builder = Client::builder(&base_url).erdo_api_key(api_key);
    if let Ok(organization) = std::env::var("ERDO_ORGANIZATION") {
        builder = builder.organization(organization);
    }
    let server = builder.build()?;

    // Stream: text arrives as `message content delta` events; the last `result` holds the answer.
    let mut events = server.erdo().invoke_stream(&bot, InvokeParams::user(question));
    while let Some(event) = events.next().await {
        let event = event?;
        if let Some(text) = event.text_delta() {
            print!("{text}");
        } else if event.kind == "result"
            && let Some(result) = event.result()
        {
            println!("\n[{}]", result.status);
        }
    }

    // A scoped token for one of your users: it may use this bot only, and every token minted
    // for `user_123` sees the same threads.
    let grant = TokenParams {
        bot_keys: Some(vec![bot.clone()]),
        external_user_id: Some("user_123".into()),
        expires_in_seconds: Some(900),
        ..Default::default()
    };
    let scoped = server.erdo().create_token(&grant).await?;
    println!("minted {} (expires {})", scoped.token_id, scoped.expires_at.to_rfc3339());

    let user = Client::builder(&base_url).erdo_token(scoped.token).build()?;
    let thread = user.erdo().create_thread(Some("Example"), Some(&bot)).await?;
    let events = user.erdo().send_message_and_wait(&thread.id, "Say that again, briefly.", None).await?;
    if let Some(result) = events.iter().rev().find_map(|e| e.result()) {
        println!("thread {}: {}", thread.id, result.texts().join("\n"));
    }
    for message in user.erdo().get_thread_messages(&thread.id).await? {
        println!("  {}: {}", message.role.as_str(), message.text());
    }

    server.erdo().revoke_token(&scoped.token_id).await?;
    Ok(())
}
