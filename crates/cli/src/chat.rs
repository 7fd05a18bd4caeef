//! `agentry chat`: an interactive terminal chat built only on the public SDK (`agentry-client`).
//!
//! Streams tokens as they arrive, shows thinking and tool calls apart from the answer (dim and
//! cyan on a terminal, tagged lines when piped), survives dropped connections (the SDK resumes),
//! and Ctrl-C stops the running turn. `--once "question"` answers one message and exits: 0 when
//! the turn completed, 1 otherwise.
//!
//! When a turn needs a human approval, the chat shows the action and its details and asks
//! `approve? [y/N]` (or `e` to approve with edited arguments), then resolves it through the SDK
//! and the same turn goes on. Without a terminal to ask on (`--once`, piped input) approvals
//! follow `--approve` / `--reject`; with neither they are rejected (reason `non-interactive`), so
//! a script never hangs. Resolved approvals, committed artifacts and safety flags are shown too.

use std::io::{IsTerminal as _, Write as _};

use agentry_client::{Client, SafetyFlag, Scope, StreamEvent, TurnEvent, TurnStatus};
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
    #[command(flatten)]
    scope: crate::ScopeArgs,
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
    /// Approve every approval the agent asks for, without asking.
    #[arg(long, conflicts_with = "reject")]
    approve: bool,
    /// Reject every approval without asking (what happens anyway without a terminal to ask on).
    #[arg(long)]
    reject: bool,
}

/// What the chat does when a turn needs an approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ApprovalPolicy {
    /// Ask on the terminal.
    Ask,
    /// Approve without asking (`--approve`).
    Approve,
    /// Reject without asking, with this reason (`--reject`, or nobody to ask).
    Reject(&'static str),
}

impl ApprovalPolicy {
    fn new(args: &ChatArgs, interactive: bool) -> Self {
        match (args.approve, args.reject, interactive) {
            (true, _, _) => ApprovalPolicy::Approve,
            (false, true, _) => ApprovalPolicy::Reject("rejected with --reject"),
            (false, false, true) => ApprovalPolicy::Ask,
            (false, false, false) => ApprovalPolicy::Reject(NON_INTERACTIVE),
        }
    }
}

/// Reason of the approvals rejected because nobody could be asked.
const NON_INTERACTIVE: &str = "non-interactive";

/// A decision on one approval.
#[derive(Debug, Clone, PartialEq)]
enum Decision {
    /// Approve, with replacement arguments when given.
    Approve(Option<serde_json::Value>),
    /// Reject with this reason.
    Reject(String),
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
    fn yellow(&self, text: &str) -> String {
        if self.color { format!("\x1b[33m{text}\x1b[0m") } else { text.to_owned() }
    }
}

/// Runs the chat. `mint` produces a session token when neither a token nor an API key is given.
pub async fn run(args: ChatArgs, mint: impl AsyncFnOnce(&Scope, &str) -> Result<String, String>) -> Result<(), String> {
    let scope = args.scope.scope();
    let builder = Client::builder(&args.server);
    let builder = match (&args.token, &args.api_key) {
        (Some(token), _) => builder.session_token(token),
        (None, Some(key)) => builder.api_key(key, scope.clone()).user_id(&args.user),
        (None, None) => builder.session_token(mint(&scope, &args.user).await?),
    };
    let client = builder.build().map_err(|e| e.to_string())?;
    let style = Style { color: std::io::stdout().is_terminal() };
    let interactive = args.once.is_none() && std::io::stdin().is_terminal();
    let policy = ApprovalPolicy::new(&args, interactive);

    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let agent = match (&args.agent, interactive) {
        (Some(agent), _) => Some(agent.clone()),
        (None, true) => pick_agent(&client, &args.server, &mut lines).await?,
        (None, false) => None,
    };
    let mut agent = agent;
    let mut thread_id = match &args.thread {
        Some(id) => id.clone(),
        None => client.threads().create(agent.as_deref(), None).await.map_err(|e| reach(&args.server, e))?.id,
    };

    if let Some(message) = args.once {
        return match stream_turn(&client, &thread_id, &message, &style, policy, &mut lines).await? {
            TurnStatus::Completed => Ok(()),
            other => Err(format!("the turn ended {}", other.as_str())),
        };
    }
    eprintln!(
        "{}",
        style.dim(&format!("thread {thread_id} — type a message, /help for commands, Ctrl-C stops an answer"))
    );
    loop {
        if interactive {
            print!("{} ", style.cyan("you>"));
            let _ = std::io::stdout().flush();
        }
        let Some(line) = lines.next_line().await.map_err(|e| e.to_string())? else { return Ok(()) };
        let line = line.trim();
        match ChatCommand::parse(line) {
            None if line.is_empty() => continue,
            None => {
                // `//…` sends the message with one `/` less.
                let message = line.strip_prefix('/').filter(|rest| rest.starts_with('/')).unwrap_or(line);
                stream_turn(&client, &thread_id, message, &style, policy, &mut lines).await?;
            }
            Some(ChatCommand::Quit) => return Ok(()),
            Some(ChatCommand::Help) => eprintln!("{}", style.dim(CHAT_HELP)),
            Some(ChatCommand::New) => {
                thread_id =
                    client.threads().create(agent.as_deref(), None).await.map_err(|e| reach(&args.server, e))?.id;
                eprintln!("{}", style.dim(&format!("new thread {thread_id}")));
            }
            Some(ChatCommand::Agent(None)) => match pick_agent(&client, &args.server, &mut lines).await? {
                Some(picked) => {
                    thread_id =
                        client.threads().create(Some(&picked), None).await.map_err(|e| reach(&args.server, e))?.id;
                    eprintln!("{}", style.dim(&format!("agent {picked}, new thread {thread_id}")));
                    agent = Some(picked);
                }
                None => eprintln!("{}", style.dim("no agent picked; the thread stays")),
            },
            Some(ChatCommand::Agent(Some(picked))) => match client.threads().create(Some(&picked), None).await {
                Ok(thread) => {
                    thread_id = thread.id;
                    eprintln!("{}", style.dim(&format!("agent {picked}, new thread {thread_id}")));
                    agent = Some(picked);
                }
                Err(err) => eprintln!("{}", style.red(&format!("cannot switch to agent {picked}: {err}"))),
            },
            Some(ChatCommand::Unknown(name)) => {
                eprintln!("{}", style.red(&format!("unknown command /{name} (not sent); /help lists the commands")));
            }
        }
    }
}

const CHAT_HELP: &str = "/help          these commands
/new           a new thread with the same agent
/agent [ID]    switch agent (pick from a list without an id) in a new thread
/quit, /exit   leave
A line starting with / is a command and is never sent; start it with // to send a literal /.";

/// A line of the chat that is a command, not a message.
#[derive(Debug, PartialEq, Eq)]
enum ChatCommand {
    Help,
    New,
    Quit,
    /// `/agent` or `/agent ID`.
    Agent(Option<String>),
    Unknown(String),
}

impl ChatCommand {
    /// The command a line is; `None` for a message (`//…` is a message starting with `/`).
    fn parse(line: &str) -> Option<ChatCommand> {
        let rest = line.strip_prefix('/').filter(|rest| !rest.starts_with('/'))?;
        let (name, argument) = rest.split_once(char::is_whitespace).map_or((rest, ""), |(n, a)| (n, a.trim()));
        Some(match name {
            "help" | "?" => ChatCommand::Help,
            "new" => ChatCommand::New,
            "quit" | "exit" => ChatCommand::Quit,
            "agent" => ChatCommand::Agent(Some(argument.to_owned()).filter(|a| !a.is_empty())),
            other => ChatCommand::Unknown(other.to_owned()),
        })
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

/// Streams one turn to the terminal; Ctrl-C cancels it; approvals it needs are decided by
/// `policy` (asking on `lines` with [`ApprovalPolicy::Ask`]). Returns how the turn ended.
async fn stream_turn(
    client: &Client,
    thread_id: &str,
    message: &str,
    style: &Style,
    policy: ApprovalPolicy,
    lines: &mut Lines,
) -> Result<TurnStatus, String> {
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
                TurnEvent::ApprovalNeeded { approval_id, action, details, tool_name, timeout_at, .. } => {
                    // The waiting `tool_call` line came just before.
                    println!("{}", style.yellow(&format!("[approval needed] {action}")));
                    let left = (timeout_at.0 - agentry_client::Timestamp::now().0).max(0) / 1000;
                    let when = format!("expires in {left} s ({})", timeout_at.to_rfc3339());
                    println!("  {}", style.dim(&format!("tool {tool_name} · id {approval_id} · {when}")));
                    if !details.is_null() {
                        println!("{}", indent(&pretty(&details), "  "));
                    }
                    let decision = match policy {
                        ApprovalPolicy::Approve => {
                            println!("{}", style.dim("  approving (--approve)"));
                            Decision::Approve(None)
                        }
                        ApprovalPolicy::Reject(reason) => {
                            let hint = if reason == NON_INTERACTIVE { "; pass --approve to approve" } else { "" };
                            println!("{}", style.dim(&format!("  rejecting ({reason}{hint})")));
                            Decision::Reject(reason.to_owned())
                        }
                        ApprovalPolicy::Ask => {
                            let asked = tokio::select! {
                                decision = ask(lines, &details, style) => Some(decision?),
                                _ = tokio::signal::ctrl_c(), if !cancelling => None,
                            };
                            match asked {
                                Some(decision) => decision,
                                None => {
                                    // Ctrl-C while asking: stop the turn (its approval is
                                    // settled as cancelled).
                                    cancelling = true;
                                    eprintln!("{}", style.dim("\n[stopping…]"));
                                    if let Err(err) = turn.cancel().await {
                                        eprintln!("{}", style.red(&format!("could not stop the turn: {err}")));
                                    }
                                    continue;
                                }
                            }
                        }
                    };
                    let resolved = match decision {
                        Decision::Approve(edited) => client.approvals().approve(&approval_id, None, edited).await,
                        Decision::Reject(reason) => client.approvals().reject(&approval_id, Some(&reason)).await,
                    };
                    if let Err(err) = resolved {
                        eprintln!("{}", style.red(&format!("could not resolve approval {approval_id}: {err}")));
                    }
                }
                TurnEvent::ApprovalResolved { approval_id, status, responded_by, comment } => {
                    let mut line = format!("[approval {approval_id} {status}");
                    if let Some(by) = responded_by {
                        line.push_str(&format!(" by {by}"));
                    }
                    if let Some(comment) = comment.filter(|c| !c.is_empty()) {
                        line.push_str(&format!(": {comment}"));
                    }
                    line.push(']');
                    println!("{}", if status == "approved" { style.cyan(&line) } else { style.yellow(&line) });
                }
                TurnEvent::ArtifactCommitted { artifact_key, kind, revision, title, language, .. } => {
                    let name = title.unwrap_or(artifact_key);
                    let kind = match language {
                        Some(language) => format!("{kind}, {language}"),
                        None => kind,
                    };
                    println!(
                        "\n{}",
                        style.cyan(&format!("[artifact \"{name}\" committed ({kind}, revision {revision})]"))
                    );
                }
                TurnEvent::ArtifactError { artifact_key, code, message, .. } => {
                    let key = artifact_key.map(|k| format!(" {k}")).unwrap_or_default();
                    eprintln!("\n{}", style.red(&format!("[artifact{key} failed ({code}): {message}]")));
                }
                TurnEvent::SafetyFlags { flags } => {
                    for flag in &flags {
                        eprintln!("{}", style.yellow(&safety_line(flag)));
                    }
                }
                TurnEvent::Error { code, message, flags } => {
                    eprintln!("\n{}", style.red(&format!("error ({code}): {message}")));
                    for flag in &flags {
                        eprintln!("{}", style.yellow(&safety_line(flag)));
                    }
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

/// Asks whether to approve; `e` approves with arguments typed as a JSON object, `n <reason>`
/// rejects with a reason. The end of the input rejects.
async fn ask(lines: &mut Lines, args: &serde_json::Value, style: &Style) -> Result<Decision, String> {
    print!("{} ", style.yellow("approve? [y/N] (or e to edit args as JSON)"));
    let _ = std::io::stdout().flush();
    let Some(answer) = lines.next_line().await.map_err(|e| e.to_string())? else {
        return Ok(Decision::Reject("no answer (input ended)".into()));
    };
    Ok(match answer.trim() {
        "y" | "Y" | "yes" => Decision::Approve(None),
        "e" | "E" | "edit" => loop {
            print!("{} ", style.yellow(&format!("args as a JSON object [Enter keeps {args}]:")));
            let _ = std::io::stdout().flush();
            let Some(text) = lines.next_line().await.map_err(|e| e.to_string())? else {
                break Decision::Reject("no answer (input ended)".into());
            };
            if text.trim().is_empty() {
                break Decision::Approve(None);
            }
            match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(edited @ serde_json::Value::Object(_)) => break Decision::Approve(Some(edited)),
                Ok(_) => eprintln!("{}", style.red("the arguments must be a JSON object")),
                Err(err) => eprintln!("{}", style.red(&format!("not JSON: {err}"))),
            }
        },
        other => {
            // `n because …` gives a reason.
            let reason = other.split_once(' ').map(|(_, r)| r.trim()).filter(|r| !r.is_empty());
            Decision::Reject(reason.unwrap_or("rejected in agentry chat").to_owned())
        }
    })
}

/// One safety flag on one line.
fn safety_line(flag: &SafetyFlag) -> String {
    let mut line = format!("[safety {} {}: {}", flag.severity, flag.kind, flag.detail);
    if let Some(text) = &flag.matched_text {
        line.push_str(&format!(" — {text}"));
    }
    line.push(']');
    line
}

fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

fn indent(text: &str, prefix: &str) -> String {
    text.lines().map(|line| format!("{prefix}{line}")).collect::<Vec<_>>().join("\n")
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

#[cfg(test)]
mod tests {
    use super::ChatCommand;

    #[test]
    fn slash_lines_are_commands_never_messages() {
        assert_eq!(ChatCommand::parse("/help"), Some(ChatCommand::Help));
        assert_eq!(ChatCommand::parse("/new"), Some(ChatCommand::New));
        assert_eq!(ChatCommand::parse("/exit"), Some(ChatCommand::Quit));
        assert_eq!(ChatCommand::parse("/agent"), Some(ChatCommand::Agent(None)));
        assert_eq!(ChatCommand::parse("/agent  support "), Some(ChatCommand::Agent(Some("support".into()))));
        assert_eq!(ChatCommand::parse("/tools"), Some(ChatCommand::Unknown("tools".into())));
        assert_eq!(ChatCommand::parse("hello /new"), None);
        assert_eq!(ChatCommand::parse("//new is a path"), None, "a message that starts with /");
    }
}
