//! `agentry chat`: an interactive terminal chat built only on the public SDK (`agentry-client`).
//!
//! Streams tokens as they arrive, shows thinking and tool calls apart from the answer (dim and
//! cyan on a terminal, tagged lines when piped), survives dropped connections (the SDK resumes),
//! and Ctrl-C stops the running turn. `--once "question"` answers one message and exits: 0 when
//! the turn completed, 1 otherwise.

use std::io::{IsTerminal as _, Write as _};

use agentry_client::{Client, Scope, StreamEvent, TurnEvent, TurnStatus};
use futures_util::StreamExt as _;
use tokio::io::AsyncBufReadExt as _;

/// Options of `agentry chat`.
#[derive(Debug, clap::Args)]
pub struct ChatArgs {
    /// Server base URL.
    #[arg(long, env = "AGENTRY_SERVER", default_value = "http://127.0.0.1:3100")]
    server: String,
    /// Session token to use (otherwise an API key, otherwise one is minted from the local secret).
    #[arg(long, env = "AGENTRY_TOKEN")]
    token: Option<String>,
    /// Operator API key (direct-header mode).
    #[arg(long, env = "AGENTRY_API_KEY")]
    api_key: Option<String>,
    /// Organization of the scope.
    #[arg(long, default_value = "default")]
    org: String,
    /// Project of the scope.
    #[arg(long, default_value = "default")]
    project: String,
    /// Environment of the scope.
    #[arg(long, default_value = "default")]
    env: String,
    /// The end user to chat as.
    #[arg(long, default_value = "cli")]
    user: String,
    /// Agent to talk to (default: ask when interactive, else the default agent).
    #[arg(long)]
    agent: Option<String>,
    /// Continue an existing thread.
    #[arg(long)]
    thread: Option<String>,
    /// Send one message, print the answer, exit.
    #[arg(long, value_name = "MESSAGE")]
    once: Option<String>,
}

/// Lines typed by the user.
type Lines = tokio::io::Lines<tokio::io::BufReader<tokio::io::Stdin>>;

/// How output is decorated.
struct Style {
    color: bool,
}

impl Style {
    fn dim(&self, text: &str) -> String {
        if self.color { format!("\x1b[2m{text}\x1b[0m") } else { text.to_owned() }
    }
    fn cyan(&self, text: &str) -> String {
        if self.color { format!("\x1b[36m{text}\x1b[0m") } else { text.to_owned() }
    }
    fn red(&self, text: &str) -> String {
        if self.color { format!("\x1b[31m{text}\x1b[0m") } else { text.to_owned() }
    }
}

/// Runs the chat. `mint` produces a session token when neither a token nor an API key is given.
pub async fn run(args: ChatArgs, mint: impl AsyncFnOnce(&Scope, &str) -> Result<String, String>) -> Result<(), String> {
    let scope = Scope::new(&args.org, &args.project, &args.env);
    let builder = Client::builder(&args.server);
    let builder = match (&args.token, &args.api_key) {
        (Some(token), _) => builder.session_token(token),
        (None, Some(key)) => builder.api_key(key, scope.clone()).user_id(&args.user),
        (None, None) => builder.session_token(mint(&scope, &args.user).await?),
    };
    let client = builder.build().map_err(|e| e.to_string())?;
    let style = Style { color: std::io::stdout().is_terminal() };
    let interactive = args.once.is_none() && std::io::stdin().is_terminal();

    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let agent = match (&args.agent, interactive) {
        (Some(agent), _) => Some(agent.clone()),
        (None, true) => pick_agent(&client, &args.server, &mut lines).await?,
        (None, false) => None,
    };
    let thread_id = match &args.thread {
        Some(id) => id.clone(),
        None => client.threads().create(agent.as_deref(), None).await.map_err(|e| reach(&args.server, e))?.id,
    };

    if let Some(message) = args.once {
        return match stream_turn(&client, &thread_id, &message, &style).await? {
            TurnStatus::Completed => Ok(()),
            other => Err(format!("the turn ended {}", other.as_str())),
        };
    }
    eprintln!("{}", style.dim(&format!("thread {thread_id} — type a message, /quit to leave, Ctrl-C stops an answer")));
    loop {
        if interactive {
            print!("{} ", style.cyan("you>"));
            let _ = std::io::stdout().flush();
        }
        let Some(line) = lines.next_line().await.map_err(|e| e.to_string())? else { return Ok(()) };
        let line = line.trim();
        match line {
            "" => continue,
            "/quit" | "/exit" => return Ok(()),
            message => {
                stream_turn(&client, &thread_id, message, &style).await?;
            }
        }
    }
}

/// Lists the agents and lets the user pick one (Enter = the default agent).
async fn pick_agent(client: &Client, server: &str, lines: &mut Lines) -> Result<Option<String>, String> {
    let agents = client.agents().list().await.map_err(|e| reach(server, e))?;
    if agents.len() <= 1 {
        return Ok(agents.first().map(|a| a.id.clone()));
    }
    for (i, agent) in agents.iter().enumerate() {
        println!("  {}. {} ({}, {})", i + 1, agent.name, agent.id, agent.model);
    }
    print!("agent [Enter = default]: ");
    let _ = std::io::stdout().flush();
    let answer = lines.next_line().await.map_err(|e| e.to_string())?.unwrap_or_default();
    Ok(answer.trim().parse::<usize>().ok().and_then(|n| agents.get(n.wrapping_sub(1))).map(|a| a.id.clone()))
}

/// Streams one turn to the terminal; Ctrl-C cancels it. Returns how the turn ended.
async fn stream_turn(client: &Client, thread_id: &str, message: &str, style: &Style) -> Result<TurnStatus, String> {
    let mut turn = client.threads().send(thread_id, message);
    let mut out = std::io::stdout();
    let mut cancelling = false;
    loop {
        let item = tokio::select! {
            item = turn.next() => item,
            _ = tokio::signal::ctrl_c(), if !cancelling => {
                cancelling = true;
                eprintln!("{}", style.dim("\n[stopping…]"));
                if let Err(err) = turn.cancel().await {
                    eprintln!("{}", style.red(&format!("could not stop the turn: {err}")));
                }
                continue;
            }
        };
        let event = match item {
            None => return Err("the stream ended without `done`".into()),
            Some(Err(err)) => return Err(reach(&client_url(client), err)),
            Some(Ok(event)) => event,
        };
        match event {
            StreamEvent::Connected | StreamEvent::Unknown(_) => {}
            StreamEvent::Disconnected { reason } => {
                eprintln!("{}", style.dim(&format!("\n[connection lost: {reason}]")))
            }
            StreamEvent::Reconnecting { attempt, delay } => {
                eprintln!("{}", style.dim(&format!("[reconnecting, attempt {attempt} in {delay:?}]")));
            }
            StreamEvent::Event(event) => match event {
                TurnEvent::Token { text } => {
                    print!("{text}");
                    let _ = out.flush();
                }
                TurnEvent::Thinking { text } => {
                    let shown = if style.color { style.dim(&text) } else { format!("[thinking]{text}") };
                    print!("{shown}");
                    let _ = out.flush();
                }
                TurnEvent::ToolCall { name, params, .. } => {
                    println!("\n{}", style.cyan(&format!("→ {name}({params})")))
                }
                TurnEvent::ToolResult { name, result, is_error, .. } => {
                    let line = format!("← {name}: {result}");
                    println!("{}", if is_error { style.red(&line) } else { style.cyan(&line) });
                }
                TurnEvent::ApprovalNeeded { action, approval_id, .. } => {
                    println!("\n{}", style.cyan(&format!("[approval needed: {action} ({approval_id})]")));
                }
                TurnEvent::Error { code, message, .. } => {
                    eprintln!("\n{}", style.red(&format!("error ({code}): {message}")))
                }
                TurnEvent::Done { status, usage, .. } => {
                    println!();
                    let summary = format!(
                        "[{} · {} in / {} out tokens]",
                        status.as_str(),
                        usage.input_tokens,
                        usage.output_tokens
                    );
                    eprintln!("{}", style.dim(&summary));
                    return Ok(status);
                }
                _ => {}
            },
        }
    }
}

fn client_url(client: &Client) -> String {
    client.base_url().to_owned()
}

/// Explains a failure, naming the server when it could not be reached.
fn reach(server: &str, err: agentry_client::Error) -> String {
    match err {
        agentry_client::Error::Network(detail) => format!("cannot reach the Agentry server at {server}: {detail}"),
        other => other.to_string(),
    }
}
