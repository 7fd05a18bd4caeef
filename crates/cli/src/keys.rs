//! `agentry keys create|list|rotate|revoke`: operator API keys, on the store directly (like
//! `agentry token mint`, for whoever runs the installation). A key is bound to one organization
//! (`--org`) or installation-wide (`--installation-wide`); its secret is printed once.

use agentry_core::id::{new_id, new_secret, prefix};
use clap::Subcommand;

use crate::StoreArgs;

/// `agentry keys`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Creates a key and prints its secret (once).
    Create {
        #[command(flatten)]
        store: StoreArgs,
        /// What it is for.
        #[arg(long)]
        name: String,
        /// The organization it acts in.
        #[arg(long, conflicts_with = "installation_wide", required_unless_present = "installation_wide")]
        org: Option<String>,
        /// Acts in every organization.
        #[arg(long)]
        installation_wide: bool,
    },
    /// Lists the keys (never their secrets).
    List {
        #[command(flatten)]
        store: StoreArgs,
        /// Only this organization's.
        #[arg(long)]
        org: Option<String>,
    },
    /// Gives a key a new secret (printed once); the old one stops working at once.
    Rotate {
        #[command(flatten)]
        store: StoreArgs,
        /// The key (`key_…`).
        id: String,
    },
    /// Revokes a key.
    Revoke {
        #[command(flatten)]
        store: StoreArgs,
        /// The key (`key_…`).
        id: String,
    },
}

/// Runs `agentry keys …`.
pub async fn run(command: KeysCommand) -> Result<(), String> {
    let store_args = match &command {
        KeysCommand::Create { store, .. }
        | KeysCommand::List { store, .. }
        | KeysCommand::Rotate { store, .. }
        | KeysCommand::Revoke { store, .. } => store,
    };
    let config = crate::layers(store_args)?.resolve().map_err(|e| e.to_string())?;
    let store = crate::open_store(&config).await?;
    let result = run_on(&store, command).await;
    store.close().await;
    result
}

async fn run_on(store: &agentry_store::Store, command: KeysCommand) -> Result<(), String> {
    let err = |e: agentry_store::StoreError| e.to_string();
    match command {
        KeysCommand::Create { name, org, .. } => {
            if let Some(org) = &org
                && (org.is_empty()
                    || org.len() > 128
                    || !org.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)))
            {
                return Err(format!("--org `{org}` must be 1 to 128 letters, digits, `_`, `.` or `-`"));
            }
            let secret = new_secret("agk", 24);
            let id = new_id(prefix::API_KEY);
            store
                .insert_api_key(&id, &agentry_core::api_key::hash(&secret), &name, org.as_deref())
                .await
                .map_err(err)?;
            let what = org.map_or_else(|| "installation-wide".to_owned(), |o| format!("organization {o}"));
            println!("{id} ({what})\n{secret}");
            eprintln!("the secret is shown once: store it now");
        }
        KeysCommand::List { org, .. } => {
            let keys = store.list_api_keys(org.as_deref()).await.map_err(err)?;
            if keys.is_empty() {
                println!("no keys");
            }
            for key in keys {
                let scope =
                    key.organization_id.as_deref().map_or("installation-wide".to_owned(), |o| format!("org {o}"));
                let state = key.revoked_at.map_or("active".to_owned(), |t| format!("revoked {}", t.to_rfc3339()));
                println!("{}  {:<24} {:<20} {}", key.id, scope, state, key.name);
            }
        }
        KeysCommand::Rotate { id, .. } => {
            let secret = new_secret("agk", 24);
            if !store.rotate_api_key(&id, &agentry_core::api_key::hash(&secret), None).await.map_err(err)? {
                return Err(format!("no active key {id}"));
            }
            println!("{secret}");
            eprintln!("the old secret of {id} no longer works; the new one is shown once");
        }
        KeysCommand::Revoke { id, .. } => {
            if !store.revoke_api_key(&id, None).await.map_err(err)? {
                return Err(format!("no active key {id}"));
            }
            println!("{id} revoked");
        }
    }
    Ok(())
}
