//! `agentry agents list|get|rm` and `agentry threads list|show`: what a running server holds, read
//! (and agents removed) with an operator API key, through the SDK.

use agentry_client::{Agent, Message, Thread, ThreadFilter};
use clap::Subcommand;

use crate::OperatorArgs as Connection;

/// The agent commands that talk to a running server.
#[derive(Debug, Subcommand)]
pub enum ServerAgentsCommand {
    /// List the scope's agents.
    List(Connection),
    /// Show an agent: its model, prompt and versions.
    Get {
        #[command(flatten)]
        connection: Connection,
        /// The agent.
        agent_id: String,
    },
    /// Delete an agent and its versions (its threads stay).
    Rm {
        #[command(flatten)]
        connection: Connection,
        /// The agent.
        agent_id: String,
    },
}

/// `agentry threads …`
#[derive(Debug, Subcommand)]
pub enum ThreadsCommand {
    /// List threads, most recently updated first.
    List {
        #[command(flatten)]
        connection: Connection,
        /// Only threads of this agent.
        #[arg(long)]
        agent: Option<String>,
        /// Only threads of this user.
        #[arg(long)]
        user: Option<String>,
        /// A thread id, or text the title contains.
        #[arg(long)]
        search: Option<String>,
        /// Include archived threads.
        #[arg(long)]
        archived: bool,
        /// How many (at most 200).
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Show a thread with its messages and tool calls.
    Show {
        #[command(flatten)]
        connection: Connection,
        /// The thread.
        thread_id: String,
    },
}

/// Runs an agent command against a server.
pub async fn agents(command: ServerAgentsCommand) -> Result<(), String> {
    match command {
        ServerAgentsCommand::List(connection) => {
            let agents = connection.client()?.agents().list().await.map_err(|e| e.to_string())?;
            if agents.is_empty() {
                println!("no agents in this scope (apply agent files with `agentry agents apply FILE…`)");
            }
            for agent in &agents {
                println!("{}", agent_line(agent));
            }
        }
        ServerAgentsCommand::Get { connection, agent_id } => {
            let client = connection.client()?;
            let agent = client
                .agents()
                .get(&agent_id)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no agent `{agent_id}` in this scope"))?;
            let versions = client.agents().list_versions(&agent_id).await.map_err(|e| e.to_string())?;
            println!("{}", agent_line(&agent));
            println!("system prompt: {}", agent.system_prompt);
            println!("versions:");
            for version in versions {
                let current = if version.is_current { "  (current)" } else { "" };
                let by = version.created_by.as_str();
                println!("  v{}  {}  by {by}{current}", version.version_number, version.created_at);
            }
        }
        ServerAgentsCommand::Rm { connection, agent_id } => {
            if !connection.client()?.agents().delete(&agent_id).await.map_err(|e| e.to_string())? {
                return Err(format!("no agent `{agent_id}` in this scope"));
            }
            println!("deleted agent {agent_id}");
        }
    }
    Ok(())
}

/// Runs a thread command against a server.
pub async fn threads(command: ThreadsCommand) -> Result<(), String> {
    match command {
        ThreadsCommand::List { connection, agent, user, search, archived, limit } => {
            let filter = ThreadFilter {
                agent_id: agent,
                user_id: user,
                search,
                include_archived: archived,
                limit: Some(limit),
                ..ThreadFilter::default()
            };
            let threads = connection.client()?.threads().list(&filter).await.map_err(|e| e.to_string())?;
            if threads.is_empty() {
                println!("no threads match");
            }
            for thread in &threads {
                println!("{}", thread_line(thread));
            }
        }
        ThreadsCommand::Show { connection, thread_id } => {
            let client = connection.client()?;
            let thread = client
                .threads()
                .get(&thread_id)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no thread `{thread_id}` in this scope"))?;
            println!("{}", thread_line(&thread));
            for message in client.threads().messages(&thread_id).await.map_err(|e| e.to_string())? {
                print!("{}", message_block(&message));
            }
        }
    }
    Ok(())
}

fn agent_line(agent: &Agent) -> String {
    format!(
        "{}  {}  {}  v{}  updated {}",
        agent.id,
        agent.name,
        agent.model,
        agent.version_number,
        agent.updated_at.to_rfc3339()
    )
}

fn thread_line(thread: &Thread) -> String {
    format!(
        "{}  {}  agent {}  user {}  {}  updated {}",
        thread.id,
        thread.title.as_deref().unwrap_or("(untitled)"),
        thread.agent_id,
        thread.user_id,
        thread.status.as_str(),
        thread.updated_at.to_rfc3339()
    )
}

fn message_block(message: &Message) -> String {
    let mut out = format!("\n[{}] {}\n{}\n", message.created_at.to_rfc3339(), message.role.as_str(), message.content);
    for call in &message.tool_calls {
        let outcome = if call.is_error { "failed" } else { "returned" };
        out.push_str(&format!("  ↳ {}({}) {outcome} {}\n", call.name, call.arguments, call.result));
    }
    out
}
