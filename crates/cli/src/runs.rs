//! `agentry runs` and `agentry schedules`: background runs and schedules of a running server,
//! in the terminal (operator API key, through the SDK).

use clap::{Args, Subcommand};

use crate::OperatorArgs;

/// `agentry runs`
#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Recent runs, one a line.
    List {
        #[command(flatten)]
        connection: OperatorArgs,
        /// Only this task's.
        #[arg(long)]
        task: Option<String>,
        /// Only runs in these states (comma-separated: QUEUED, EXECUTING, FAILED, …).
        #[arg(long)]
        status: Option<String>,
        /// How many, newest first.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// One run with its attempts and output.
    Get(RunArgs),
    /// Cancels a run.
    Cancel(RunArgs),
    /// Starts a new run with a run's payload.
    Replay(RunArgs),
    /// Triggers a run of a task.
    Trigger {
        #[command(flatten)]
        connection: OperatorArgs,
        /// The task.
        task: String,
        /// The payload, as JSON.
        #[arg(long, default_value = "{}")]
        payload: String,
        /// A second trigger with this key returns the first run.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
}

/// A run named on the command line.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    connection: OperatorArgs,
    /// The run (`run_…`).
    run_id: String,
}

/// `agentry schedules`
#[derive(Debug, Subcommand)]
pub enum SchedulesCommand {
    /// The scope's schedules.
    List(OperatorArgs),
    /// Creates a schedule: `agentry schedules create TASK "0 9 * * 1" --timezone Europe/Berlin`.
    Create {
        #[command(flatten)]
        connection: OperatorArgs,
        /// The task.
        task: String,
        /// Cron expression, 5 fields or 6 with seconds first.
        cron: String,
        /// IANA time zone (default UTC).
        #[arg(long)]
        timezone: Option<String>,
        /// Each run's payload, as JSON.
        #[arg(long)]
        payload: Option<String>,
    },
    /// Turns a schedule on.
    Activate(ScheduleArgs),
    /// Turns a schedule off.
    Deactivate(ScheduleArgs),
    /// Deletes a schedule.
    Delete(ScheduleArgs),
}

/// A schedule named on the command line.
#[derive(Debug, Args)]
pub struct ScheduleArgs {
    #[command(flatten)]
    connection: OperatorArgs,
    /// The schedule (`sched_…`).
    schedule_id: String,
}

fn json(text: &str, what: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(text).map_err(|e| format!("{what} is not JSON: {e}"))
}

/// Runs `agentry runs …`.
pub async fn runs(command: RunsCommand) -> Result<(), String> {
    let err = |e: agentry_client::Error| e.to_string();
    match command {
        RunsCommand::List { connection, task, status, limit } => {
            let client = connection.client()?;
            let runs = client.bgo().runs(task.as_deref(), status.as_deref(), Some(limit)).await.map_err(err)?;
            if runs.is_empty() {
                println!("no runs");
            }
            for run in runs {
                let error = run.error.map(|e| format!("  {e}")).unwrap_or_default();
                println!(
                    "{}  {:<10} {:<20} attempts {}{error}",
                    run.id,
                    run.status.as_str(),
                    run.task_id,
                    run.attempt_count
                );
            }
        }
        RunsCommand::Get(args) => {
            let run = args.connection.client()?.bgo().run(&args.run_id).await.map_err(err)?;
            println!("{} {} ({}), {} attempt(s)", run.id, run.status.as_str(), run.task_id, run.attempt_count);
            for attempt in run.attempts.iter().flatten() {
                let error = attempt.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default();
                println!("  attempt {} on {}: {}{error}", attempt.number, attempt.replica, attempt.status.as_str());
            }
            if let Some(output) = &run.output {
                println!("output: {output}");
            }
        }
        RunsCommand::Cancel(args) => {
            let status = args.connection.client()?.bgo().cancel(&args.run_id).await.map_err(err)?;
            println!("{} {}", args.run_id, status.as_str());
        }
        RunsCommand::Replay(args) => {
            let handle = args.connection.client()?.bgo().replay(&args.run_id).await.map_err(err)?;
            println!("{}", handle.id);
        }
        RunsCommand::Trigger { connection, task, payload, idempotency_key } => {
            let options = agentry_client::TriggerOptions { idempotency_key, ..Default::default() };
            let handle =
                connection.client()?.bgo().trigger(&task, json(&payload, "--payload")?, &options).await.map_err(err)?;
            println!("{}{}", handle.id, if handle.is_cached { " (an earlier run with this key)" } else { "" });
        }
    }
    Ok(())
}

/// Runs `agentry schedules …`.
pub async fn schedules(command: SchedulesCommand) -> Result<(), String> {
    let err = |e: agentry_client::Error| e.to_string();
    let line = |s: &agentry_client::Schedule| {
        let next = s.next_run_at.map_or_else(|| "-".to_owned(), agentry_client::Timestamp::to_rfc3339);
        format!(
            "{}  {:<20} {:<16} {:<18} {}  next {next}",
            s.id,
            s.task_id,
            s.cron,
            s.timezone,
            if s.active { "on " } else { "off" }
        )
    };
    match command {
        SchedulesCommand::List(connection) => {
            let schedules = connection.client()?.bgo().schedules().await.map_err(err)?;
            if schedules.is_empty() {
                println!("no schedules");
            }
            for schedule in &schedules {
                println!("{}", line(schedule));
            }
        }
        SchedulesCommand::Create { connection, task, cron, timezone, payload } => {
            let payload = payload.map(|p| json(&p, "--payload")).transpose()?;
            let schedule = connection
                .client()?
                .bgo()
                .create_schedule(&task, &cron, timezone.as_deref(), payload)
                .await
                .map_err(err)?;
            println!("{}", line(&schedule));
        }
        SchedulesCommand::Activate(args) => {
            let schedule =
                args.connection.client()?.bgo().set_schedule_active(&args.schedule_id, true).await.map_err(err)?;
            println!("{}", line(&schedule));
        }
        SchedulesCommand::Deactivate(args) => {
            let schedule =
                args.connection.client()?.bgo().set_schedule_active(&args.schedule_id, false).await.map_err(err)?;
            println!("{}", line(&schedule));
        }
        SchedulesCommand::Delete(args) => {
            let deleted = args.connection.client()?.bgo().delete_schedule(&args.schedule_id).await.map_err(err)?;
            println!("{} {}", args.schedule_id, if deleted { "deleted" } else { "not found" });
        }
    }
    Ok(())
}
