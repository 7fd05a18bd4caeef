//! First start on an empty store: the `default/default/default` scope, the installation-wide
//! entity `default` that signs session tokens, an operator API key and the built-in default agent.
//!
//! Runs exactly once per store, in one transaction (a metadata latch inside it makes concurrent
//! replicas agree). Later starts only honour rotated values from the environment.

use agentry_core::id::{new_id, new_secret, prefix};
use agentry_core::session_token::MIN_SECRET_LEN;
use agentry_core::{AgentSpec, Scope, Timestamp, api_key};
use agentry_store::auth::Installation;
use agentry_store::{Store, StoreError};

/// Id of the entity created at bootstrap; `agentry token mint` signs as it.
pub const DEFAULT_ENTITY: &str = "default";

/// Secrets supplied by the operator (`AGENTRY_SERVICE_SECRET`, `AGENTRY_API_KEY`).
#[derive(Debug, Clone, Default)]
pub struct SuppliedSecrets {
    /// Service secret of the default entity.
    pub service_secret: Option<String>,
    /// Operator API key.
    pub api_key: Option<String>,
}

/// What bootstrap did; generated secrets are returned so the caller can show them once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bootstrap {
    /// The store was already set up.
    AlreadyDone,
    /// A new installation; `Some` for each secret that was generated (not supplied).
    Created {
        /// Generated service secret.
        generated_service_secret: Option<String>,
        /// Generated operator API key.
        generated_api_key: Option<String>,
    },
}

/// Bootstrap failures.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// A supplied secret is unusable.
    #[error("AGENTRY_SERVICE_SECRET must be at least {MIN_SECRET_LEN} characters")]
    SecretTooShort,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Sets up a new installation (its built-in default agent on `default_model`), or applies
/// supplied secrets to an existing one.
pub async fn bootstrap(
    store: &Store,
    supplied: &SuppliedSecrets,
    default_model: &str,
) -> Result<Bootstrap, BootstrapError> {
    if let Some(secret) = &supplied.service_secret
        && secret.len() < MIN_SECRET_LEN
    {
        return Err(BootstrapError::SecretTooShort);
    }
    let (secret, generated_service_secret) = match &supplied.service_secret {
        Some(secret) => (secret.clone(), None),
        None => {
            let secret = new_secret("ags", 32);
            (secret.clone(), Some(secret))
        }
    };
    let (key, generated_api_key) = match &supplied.api_key {
        Some(key) => (key.clone(), None),
        None => {
            let key = api_key::generate();
            (key.clone(), Some(key))
        }
    };
    let agent = AgentSpec {
        description: Some("Built-in default agent".into()),
        ..AgentSpec::new("default", "Default agent", default_model, "You are a helpful assistant.")
    };
    let key_id = new_id(prefix::API_KEY);
    let installation = Installation {
        bootstrapped_at: &Timestamp::now().to_rfc3339(),
        entity: (DEFAULT_ENTITY, &secret),
        api_key: (&key_id, &api_key::hash(&key), "bootstrap operator key"),
        agent: &agent,
    };
    // All of it or nothing: a start that fails later has not printed a key that was not kept,
    // and of replicas starting at once on an empty store exactly one sets it up.
    if !store.bootstrap_installation(&installation).await? {
        apply_supplied(store, supplied).await?;
        return Ok(Bootstrap::AlreadyDone);
    }
    tracing::info!(scope = %Scope::default_scope(), "bootstrapped a new installation");
    Ok(Bootstrap::Created { generated_service_secret, generated_api_key })
}

/// On an existing installation: register a supplied API key that is not known yet, and rotate the
/// default entity's secret to a supplied one.
async fn apply_supplied(store: &Store, supplied: &SuppliedSecrets) -> Result<(), BootstrapError> {
    if let Some(key) = &supplied.api_key {
        let hash = api_key::hash(key);
        if store.api_key_by_hash(&hash).await?.is_none() {
            store
                .insert_api_key(&new_id(prefix::API_KEY), &hash, "from AGENTRY_API_KEY (installation-wide)", None)
                .await?;
            tracing::info!("registered the API key from AGENTRY_API_KEY");
        }
    }
    if let Some(secret) = &supplied.service_secret {
        let current = store.entity_secret(DEFAULT_ENTITY, "", "").await?;
        if current.as_deref() != Some(secret.as_str()) {
            if store.set_entity_secret(DEFAULT_ENTITY, secret).await? {
                tracing::warn!("rotated the default entity's service secret to AGENTRY_SERVICE_SECRET");
            } else {
                store.insert_entity(DEFAULT_ENTITY, None, None, secret).await?;
            }
        }
    }
    Ok(())
}
