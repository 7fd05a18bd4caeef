//! Streaming: send a message and print the answer as it arrives. The stream reconnects and
//! resumes by itself if the connection drops.
//!
//! ```sh
//! AGENTRY_TOKEN=… cargo run -p agentry-client --example streaming -- "Summarise today's inbox."
//! ```

use agentry_client::{Client, StreamEvent, TurnEvent};
use futures_util::StreamExt as _;

#[tokio::main]
async fn main() -> agentry_client::Result<()> {
    let base_url = std::env::var("AGENTRY_SERVER").unwrap_or_else(|_| "http://127.0.0.1:3100".into());
    let token =
        std::env::var("AGENTRY_TOKEN").map_err(|_| agentry_client::Error::Config("set AGENTRY_TOKEN".into()))?;
    let message = std::env::args().nth(1).unwrap_or_else(|| "Hello!".into());
    let client = Client::builder(base_url).session_token(token).build()?;

    let thread = client.threads().create(None, None).await?;
    let mut turn = client.threads().send(&thread.id, &message);
    while let Some(event) = turn.next().await {
        match event? {
            StreamEvent::Event(TurnEvent::Token { text }) => print!("{text}"),
            StreamEvent::Event(TurnEvent::ToolCall { name, params, .. }) => println!("\n[tool {name} {params}]"),
            StreamEvent::Event(TurnEvent::Error { message, .. }) => eprintln!("\n[error: {message}]"),
            StreamEvent::Event(TurnEvent::Done { usage, status, .. }) => {
                println!(
                    "\n[{} — {} tokens in, {} out, {} cents]",
                    status.as_str(),
                    usage.input_tokens,
                    usage.output_tokens,
                    usage.cost.as_cents()
                );
            }
            StreamEvent::Reconnecting { attempt, .. } => eprintln!("[reconnecting, attempt {attempt}]"),
            _ => {}
        }
    }
    Ok(())
}
