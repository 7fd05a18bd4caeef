//! The embedded local model: GGUF files run in-process on the CPU ([`model`]), fetched into a
//! cache by name ([`catalog`]). Agents name `local:<catalog name>` (e.g. `local:smollm2-135m`) or
//! `local:/path/to/model.gguf`.

pub mod catalog;
pub mod model;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::{ModelDelta, ModelProvider, ModelRequest, ModelStream, ModelUsage, ProviderError, TokenBounds};
pub use catalog::{CATALOG, ModelCache, PullError, catalog_model};
pub use model::LocalModel;

/// Completion tokens per local call unless configured.
pub const DEFAULT_MAX_TOKENS: usize = 256;

/// Loaded local models, shared by every agent that names them (loading costs seconds and
/// hundreds of MB, so it happens once per file).
#[derive(Debug, Clone)]
pub struct LocalModels {
    cache: ModelCache,
    loaded: Arc<Mutex<HashMap<PathBuf, Arc<LocalModel>>>>,
    max_tokens: usize,
}

impl LocalModels {
    /// Models resolved through `cache`.
    pub fn new(cache: ModelCache) -> Self {
        LocalModels { cache, loaded: Arc::default(), max_tokens: DEFAULT_MAX_TOKENS }
    }

    /// The cache.
    pub fn cache(&self) -> &ModelCache {
        &self.cache
    }

    /// The file a `local:` model name means.
    pub fn path_for(&self, name: &str) -> Result<PathBuf, ProviderError> {
        if let Some(model) = catalog_model(name) {
            return Ok(self.cache.path_of(model));
        }
        if name.ends_with(".gguf") || name.contains('/') {
            return Ok(PathBuf::from(name));
        }
        let known = CATALOG.iter().map(|m| m.name).collect::<Vec<_>>().join(", ");
        Err(ProviderError::NotConfigured(format!(
            "unknown local model `{name}`: use a catalog name ({known}) or a path to a .gguf file"
        )))
    }

    /// A provider for `local:<name>`, loading the model on first use.
    pub fn provider(&self, name: &str) -> Result<LocalProvider, ProviderError> {
        let path = self.path_for(name)?;
        if catalog_model(name).is_some() && !path.exists() {
            return Err(ProviderError::NotConfigured(format!(
                "model `{name}` is not in the cache ({}); run `agentry models pull {name}`",
                self.cache.dir.display()
            )));
        }
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        let model = match loaded.get(&path) {
            Some(model) => model.clone(),
            None => {
                let started = std::time::Instant::now();
                let model = Arc::new(LocalModel::load(&path)?);
                tracing::info!(path = %path.display(), seconds = started.elapsed().as_secs_f64(), "loaded local model");
                loaded.insert(path, model.clone());
                model
            }
        };
        Ok(LocalProvider { model, max_tokens: self.max_tokens })
    }
}

/// A loaded local model as a [`ModelProvider`]. It cannot call tools (an agent that declares
/// tools on it is refused when applied); generations run one at a time on a blocking thread.
#[derive(Debug, Clone)]
pub struct LocalProvider {
    model: Arc<LocalModel>,
    max_tokens: usize,
}

impl ModelProvider for LocalProvider {
    fn stream(&self, request: ModelRequest) -> ModelStream {
        let (tx, rx) = mpsc::channel(64);
        let model = self.model.clone();
        let max_tokens = self.max_tokens;
        tokio::task::spawn_blocking(move || {
            let result = (|| {
                let prompt = model.prompt(&request.messages)?;
                let ids = model.encode(&prompt)?;
                let generated = model.generate(&ids, max_tokens, &request.sampling, |text| {
                    tx.blocking_send(Ok(ModelDelta::Text(text))).is_ok()
                })?;
                let usage = ModelUsage {
                    input_tokens: ids.len() as u64,
                    output_tokens: generated as u64,
                    cached_input_tokens: 0,
                    reasoning_tokens: 0,
                };
                let _ = tx.blocking_send(Ok(ModelDelta::Usage(usage)));
                Ok::<(), ProviderError>(())
            })();
            if let Err(err) = result {
                let _ = tx.blocking_send(Err(err));
            }
        });
        rx
    }

    fn bounds(&self, request: &ModelRequest) -> TokenBounds {
        TokenBounds::by_bytes(request, self.max_tokens as u64)
    }

    fn calls_tools(&self) -> bool {
        false
    }
}
