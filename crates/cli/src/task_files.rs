//! Task files: TOML documents declaring a background task (`kind = "agent"` or `"http"`), its
//! retries, limits and schedules, and optional `organization`/`project`/`environment` (default
//! `default`). See `agentry_core::task::TaskSpec`.

use std::path::{Path, PathBuf};

use agentry_core::task::TaskSpec;
use agentry_store::Store;

use crate::agent_files::AgentFileError as FileError;

/// Parses and validates one task file.
pub fn read(path: &Path) -> Result<TaskSpec, FileError> {
    let invalid = |message: String| FileError::Invalid { path: path.to_owned(), message };
    if path.extension().and_then(|e| e.to_str()) != Some("toml") {
        return Err(invalid("task files must have the .toml extension".into()));
    }
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Read { path: path.to_owned(), source })?;
    let spec: TaskSpec = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    spec.validate().map_err(|e| invalid(e.to_string()))?;
    Ok(spec)
}

/// Reads and checks every file first (one bad file applies nothing), then applies each with its
/// schedules. Returns `(file, task id, changed)` per file.
pub async fn apply_all(store: &Store, files: &[PathBuf]) -> Result<Vec<(PathBuf, String, bool)>, FileError> {
    let specs = files.iter().map(|f| read(f).map(|s| (f, s))).collect::<Result<Vec<_>, _>>()?;
    let mut applied = Vec::new();
    for (file, spec) in specs {
        let created_by =
            format!("file:{}", file.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned()));
        let changed = agentry_engine::jobs::apply_task(store, &spec, &created_by)
            .await
            .map_err(|e| FileError::Invalid { path: file.clone(), message: e.to_string() })?;
        applied.push((file.clone(), spec.id.clone(), changed));
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smallest_task_file_reads_and_bad_ones_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("summarise.toml");
        std::fs::write(
            &good,
            "id = \"summarise\"\nkind = \"agent\"\nagent = \"support\"\nmessage = \"Summarise {{payload.url}}\"\n",
        )
        .unwrap();
        assert_eq!(read(&good).unwrap().id, "summarise");
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "id = \"x\"\nkind = \"http\"\nurl = \"http://h\"\n[[schedules]]\ncron = \"0 9 * * *\"\ntimezone = \"Moon/Base\"\n").unwrap();
        let err = read(&bad).unwrap_err().to_string();
        assert!(err.contains("bad.toml") && err.contains("Moon/Base"), "{err}");
    }
}
