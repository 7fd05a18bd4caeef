//! Agent files: TOML documents with top-level `id`, `name`, `model`, `system_prompt`, and
//! optional `organization`/`project`/`environment` (default `default`).

use std::path::{Path, PathBuf};

use agentry_core::AgentSpec;
use agentry_store::Store;

/// A problem with an agent file, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum AgentFileError {
    /// Could not read the file or directory.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not a valid agent (syntax, unknown key, bad value).
    #[error("agent file {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] agentry_store::StoreError),
}

/// Parses and validates one agent file.
pub fn read(path: &Path) -> Result<AgentSpec, AgentFileError> {
    let invalid = |message: String| AgentFileError::Invalid { path: path.to_owned(), message };
    match path.extension().and_then(|e| e.to_str()) {
        Some("toml") => {}
        Some("yaml" | "yml") => {
            return Err(invalid("YAML agent files are not supported; write the agent as TOML".into()));
        }
        _ => return Err(invalid("agent files must have the .toml extension".into())),
    }
    let text =
        std::fs::read_to_string(path).map_err(|source| AgentFileError::Read { path: path.to_owned(), source })?;
    let spec: AgentSpec = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    let problems = spec.problems();
    if !problems.is_empty() {
        let lines: Vec<String> = problems.iter().map(|problem| format!("  - {problem}")).collect();
        return Err(invalid(format!("{} problem(s):\n{}", problems.len(), lines.join("\n"))));
    }
    Ok(spec)
}

/// The `.toml` files of a directory, sorted by name.
pub fn files_in(dir: &Path) -> Result<Vec<PathBuf>, AgentFileError> {
    let read_err = |source| AgentFileError::Read { path: dir.to_owned(), source };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_err)? {
        let path = entry.map_err(read_err)?.path();
        if path.is_file() && path.extension().is_some_and(|e| e == "toml") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Reads and checks every file first (so one bad file applies nothing), then applies each to its
/// scope. `check` says whether an agent can run here (its model can be served, what its tools
/// need is configured). Returns `(file, agent id, version number, changed)` per file.
pub async fn apply_all(
    store: &Store,
    providers: &agentry_llm::ProviderRegistry,
    check: impl Fn(&agentry_core::AgentSpec) -> Result<(), String>,
    files: &[PathBuf],
) -> Result<Vec<(PathBuf, String, i64, bool)>, AgentFileError> {
    let specs = files.iter().map(|f| read(f).map(|s| (f, s))).collect::<Result<Vec<_>, _>>()?;
    for (file, spec) in &specs {
        let invalid = |message| AgentFileError::Invalid { path: file.to_path_buf(), message };
        check(spec).map_err(invalid)?;
        agentry_engine::budget::check_priced_under_caps(store, providers, &spec.declared_scope(), spec)
            .await
            .map_err(invalid)?;
    }
    let mut applied = Vec::new();
    for (file, spec) in specs {
        let created_by =
            format!("file:{}", file.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned()));
        let result = store.apply_agent(&spec.declared_scope(), &spec, &created_by, None).await?;
        applied.push((file.clone(), spec.id.clone(), result.agent.version_number, result.changed));
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_file_parses_and_bad_files_name_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("a.toml");
        std::fs::write(&good, "id = \"a\"\nname = \"A\"\nmodel = \"scripted:echo\"\nsystem_prompt = \"hi\"\n").unwrap();
        assert_eq!(read(&good).unwrap().system_prompt, "hi");

        let typo = dir.path().join("typo.toml");
        std::fs::write(&typo, "id = \"a\"\nname = \"A\"\nmodel = \"scripted:echo\"\nsystem_promt = \"hi\"\n").unwrap();
        let text = read(&typo).unwrap_err().to_string();
        assert!(text.contains("typo.toml") && text.contains("system_promt"), "{text}");

        let bad_model = dir.path().join("m.toml");
        std::fs::write(&bad_model, "id = \"a\"\nname = \"A\"\nmodel = \"gpt4\"\n").unwrap();
        assert!(read(&bad_model).unwrap_err().to_string().contains("model"));

        // Every problem of a file at once, one per line.
        let many = dir.path().join("many.toml");
        std::fs::write(&many, "id = \"a b\"\nname = \"A\"\nmodel = \"gpt4\"\ntools = [\"teleport\"]\n").unwrap();
        let text = read(&many).unwrap_err().to_string();
        assert!(text.contains("3 problem(s):"), "{text}");
        for field in ["`id`", "`model`", "`tools`"] {
            assert!(text.lines().any(|line| line.starts_with("  - ") && line.contains(field)), "{field}: {text}");
        }

        let yaml = dir.path().join("y.yaml");
        std::fs::write(&yaml, "id: a").unwrap();
        assert!(read(&yaml).unwrap_err().to_string().contains("TOML"));
        assert_eq!(files_in(dir.path()).unwrap().len(), 4);
    }
}
