//! One dataset shared by the dataset targets, made once per fuzzing process.
// Each target binary uses part of this module.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use agentry_datasets::Datasets;

pub const DATASET: &str = "sales";

const CSV: &str =
    "name,amount,day,paid\nann,10,2026-01-02,true\nbob,2.5,2026-02-03,false\n\"c, d\",-7,2026-03-04,true\n";

pub struct Fixture {
    pub runtime: tokio::runtime::Runtime,
    pub datasets: Datasets,
    root: PathBuf,
    files: Vec<(PathBuf, Vec<u8>)>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    /// Every file under the root is as it was after the upload, and no other is there.
    pub fn assert_untouched(&self, input: &str) {
        let now = snapshot(&self.root);
        assert!(now == self.files, "{input:?} changed the dataset files: {:?}", names(&now));
    }
}

pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("datasets");
        let datasets = Datasets::new(root.clone());
        runtime.block_on(datasets.create_from_csv(DATASET, CSV.as_bytes())).expect("upload");
        let files = snapshot(&root);
        Fixture { runtime, datasets, root, files, _dir: dir }
    })
}

fn snapshot(root: &std::path::Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("read file");
                files.push((path, bytes));
            }
        }
    }
    files.sort();
    files
}

fn names(files: &[(PathBuf, Vec<u8>)]) -> Vec<&PathBuf> {
    files.iter().map(|(path, _)| path).collect()
}
