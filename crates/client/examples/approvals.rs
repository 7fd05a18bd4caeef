//! Approvals: list what waits for a human, then approve or reject one. The turn that asked
//! resumes by itself once it is resolved.
//!
//! ```sh
//! export AGENTRY_TOKEN=…   # the requesting user's session token (operators: see `Client::api_key`)
//! cargo run -p agentry-client --example approvals                               # pending ones
//! cargo run -p agentry-client --example approvals -- approve apr_… "looks right"
//! cargo run -p agentry-client --example approvals -- approve apr_… "" '{"amount": 10}'
//! cargo run -p agentry-client --example approvals -- reject apr_… "not today"
//! ```

use agentry_client::{ApprovalFilter, ApprovalStatus, Client, Error};

#[tokio::main]
async fn main() -> agentry_client::Result<()> {
    let base_url = std::env::var("AGENTRY_SERVER").unwrap_or_else(|_| "http://127.0.0.1:3100".into());
    let token = std::env::var("AGENTRY_TOKEN").map_err(|_| Error::Config("set AGENTRY_TOKEN".into()))?;
    let client = Client::builder(base_url).session_token(token).build()?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let text = |i: usize| args.get(i).map(String::as_str).filter(|s| !s.is_empty());

    let settled = match (text(0), text(1)) {
        (Some("approve"), Some(id)) => {
            let edited = match text(3) {
                Some(json) => Some(serde_json::from_str(json).map_err(|e| Error::Config(format!("edited args: {e}")))?),
                None => None,
            };
            client.approvals().approve(id, text(2), edited).await
        }
        (Some("reject"), Some(id)) => client.approvals().reject(id, text(2)).await,
        _ => {
            let pending = ApprovalFilter { status: Some(ApprovalStatus::Pending), ..Default::default() };
            let page = client.approvals().list(&pending).await?;
            println!("{} pending approval(s)", page.pending_count);
            for approval in page.approvals {
                let (id, action, thread, deadline) =
                    (&approval.id, &approval.action, &approval.thread_id, approval.timeout_at);
                println!("{id}  {action}  (thread {thread}, until {deadline})");
                println!("    {}", approval.details);
            }
            return Ok(());
        }
    };
    match settled {
        Ok(approval) => println!("{} is now {}", approval.id, approval.status.as_str()),
        // Someone (or the timeout) settled it first.
        Err(Error::Conflict { message }) => println!("already settled: {message}"),
        Err(err) => return Err(err),
    }
    Ok(())
}
