//! Quick start: list agents, create a thread, read it back.
//!
//! ```sh
//! AGENTRY_TOKEN=$(agentry token mint --org default --project default --env default --user alice) \
//!     cargo run -p agentry-client --example quickstart
//! ```

use agentry_client::{Client, ThreadFilter};

#[tokio::main]
async fn main() -> agentry_client::Result<()> {
    let base_url = std::env::var("AGENTRY_SERVER").unwrap_or_else(|_| "http://127.0.0.1:3100".into());
    let token =
        std::env::var("AGENTRY_TOKEN").map_err(|_| agentry_client::Error::Config("set AGENTRY_TOKEN".into()))?;
    let client = Client::builder(base_url).session_token(token).build()?;

    for agent in client.agents().list().await? {
        println!("agent {} — {} ({})", agent.id, agent.name, agent.model);
    }
    let thread = client.threads().create(None, Some("Quick start")).await?;
    println!("created thread {}", thread.id);
    let threads = client.threads().list(&ThreadFilter::default()).await?;
    println!("you have {} active thread(s)", threads.len());
    Ok(())
}
