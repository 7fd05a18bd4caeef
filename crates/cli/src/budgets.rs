//! `agentry budgets`: budget caps of a running server, with an operator API key.

use agentry_client::NewBudgetCap;
use clap::Subcommand;

use crate::OperatorArgs as Connection;

/// `agentry budgets …`
#[derive(Debug, Subcommand)]
pub enum BudgetsCommand {
    /// List the scope's caps.
    List(Connection),
    /// Show where the caps stand in their current windows.
    Status {
        #[command(flatten)]
        connection: Connection,
        /// Only caps that apply to this agent.
        #[arg(long)]
        agent: Option<String>,
        /// Only caps that apply to this user.
        #[arg(long)]
        user: Option<String>,
    },
    /// Create a cap (or replace the one with the same scope type, target and period).
    Set {
        #[command(flatten)]
        connection: Connection,
        /// `scope`, `agent` or `user`.
        #[arg(long)]
        scope_type: String,
        /// The agent id or user id (`*`: each user on their own).
        #[arg(long)]
        target: Option<String>,
        /// `hour`, `day`, `week` or `month`.
        #[arg(long)]
        period: String,
        /// Spend allowed per window, in cents.
        #[arg(long)]
        limit_cents: f64,
        /// Turns allowed per window.
        #[arg(long)]
        turns_limit: Option<i64>,
        /// Alert thresholds in percent, e.g. `50,80,100`.
        #[arg(long, value_delimiter = ',')]
        thresholds: Option<Vec<u32>>,
        /// Where alerts are POSTed.
        #[arg(long)]
        webhook: Option<String>,
    },
    /// Delete a cap.
    Delete {
        #[command(flatten)]
        connection: Connection,
        /// The cap.
        cap_id: String,
    },
    /// Lift a cap's block for some minutes (0 restores it).
    Override {
        #[command(flatten)]
        connection: Connection,
        /// The cap.
        cap_id: String,
        /// Minutes.
        #[arg(long)]
        minutes: u32,
    },
}

/// Runs a budgets command and prints its result.
pub async fn run(command: BudgetsCommand) -> Result<(), String> {
    let show = |cap: &agentry_client::BudgetCap| {
        let target = if cap.target_id.is_empty() { String::new() } else { format!(" {}", cap.target_id) };
        let turns = cap.turns_limit.map_or_else(String::new, |t| format!(", {t} turns"));
        let state = if cap.enabled { "" } else { " (disabled)" };
        println!("{}  {}{target}  {:.4} ¢ per {}{turns}{state}", cap.id, cap.scope_type, cap.limit_cents, cap.period);
    };
    match command {
        BudgetsCommand::List(connection) => {
            let caps = connection.client()?.budgets().list().await.map_err(|e| e.to_string())?;
            if caps.is_empty() {
                println!("no budget caps (add one with `agentry budgets set`)");
            }
            caps.iter().for_each(show);
        }
        BudgetsCommand::Status { connection, agent, user } => {
            let status = connection
                .client()?
                .budgets()
                .status(agent.as_deref(), user.as_deref())
                .await
                .map_err(|e| e.to_string())?;
            for cap in &status.caps {
                println!(
                    "{}  {}  {:.4} ¢ spent + {:.4} ¢ reserved of {:.4} ¢ ({:.1} %), {} turns{}",
                    cap.cap.id,
                    cap.window_key,
                    cap.spent_cents,
                    cap.reserved_cents,
                    cap.cap.limit_cents,
                    cap.percent,
                    cap.turns,
                    if cap.blocked { ", blocked" } else { "" }
                );
            }
            match status.reason {
                Some(reason) => println!("blocked: {reason}"),
                None => println!("not blocked"),
            }
        }
        BudgetsCommand::Set {
            connection,
            scope_type,
            target,
            period,
            limit_cents,
            turns_limit,
            thresholds,
            webhook,
        } => {
            let cap = NewBudgetCap {
                scope_type,
                target_id: target,
                period,
                limit_cents,
                turns_limit,
                alert_thresholds: thresholds,
                alert_webhook_url: webhook,
                ..NewBudgetCap::default()
            };
            let stored = connection.client()?.budgets().set(&cap).await.map_err(|e| e.to_string())?;
            show(&stored);
        }
        BudgetsCommand::Delete { connection, cap_id } => {
            match connection.client()?.budgets().delete(&cap_id).await.map_err(|e| e.to_string())? {
                true => println!("deleted {cap_id}"),
                false => return Err(format!("no budget cap {cap_id} in this scope")),
            }
        }
        BudgetsCommand::Override { connection, cap_id, minutes } => {
            let cap = connection.client()?.budgets().override_for(&cap_id, minutes).await.map_err(|e| e.to_string())?;
            match cap.override_until {
                Some(until) => println!("{cap_id} does not block until {until}"),
                None => println!("{cap_id} blocks again"),
            }
        }
    }
    Ok(())
}
