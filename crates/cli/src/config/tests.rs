use super::*;

fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |var| pairs.iter().find(|(k, _)| *k == var).map(|(_, v)| (*v).to_owned())
}

fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
    let path = dir.path().join("agentry.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn defaults_are_embedded_sqlite_on_localhost() {
    let config = Layers::load(None, env_of(&[])).unwrap().resolve().unwrap();
    assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
    assert_eq!(config.store, StoreLocation::Sqlite(PathBuf::from("./agentry-data/agentry.db")));
    assert_eq!(config.max_body_bytes, 1024 * 1024);
    assert_eq!(config.max_message_bytes, 32 * 1024);
    assert_eq!(config.event_retention.as_secs(), 7 * 24 * 3600);
}

#[test]
fn file_then_env_then_flags_take_precedence() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(&dir, "listen = \"127.0.0.1:1111\"\nmax_body_bytes = 2048\ndata_dir = \"/from/file\"\n");
    let mut layers =
        Layers::load(Some(&file), env_of(&[("AGENTRY_LISTEN", "127.0.0.1:2222"), ("AGENTRY_DATA_DIR", "/env")]))
            .unwrap();
    let config = layers.resolve().unwrap();
    assert_eq!(config.listen.port(), 2222);
    assert_eq!(config.max_body_bytes, 2048);
    assert_eq!(config.store, StoreLocation::Sqlite(PathBuf::from("/env/agentry.db")));
    layers.flag("listen", "--listen", Some("127.0.0.1:3333".into()));
    assert_eq!(layers.resolve().unwrap().listen.port(), 3333);
}

#[test]
fn postgres_url_selects_postgres() {
    let layers = Layers::load(None, env_of(&[("AGENTRY_DATABASE_URL", "postgres://u@h/db")])).unwrap();
    assert_eq!(layers.resolve().unwrap().store, StoreLocation::Postgres("postgres://u@h/db".into()));
}

#[test]
fn providers_come_from_the_file_and_the_standard_key_variables() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        &dir,
        "[providers.ollama]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:11434/v1\"\napi_key_env = \"OLLAMA_KEY\"\n\n[providers.ollama.prices.\"llama3\"]\ninput = 1\noutput = 2\n",
    );
    let config = Layers::load(Some(&file), env_of(&[("OLLAMA_KEY", "k"), ("ANTHROPIC_API_KEY", "a")]))
        .unwrap()
        .resolve()
        .unwrap();
    let ollama = &config.providers["ollama"];
    assert_eq!((ollama.base_url.as_str(), ollama.api_key.as_deref()), ("http://127.0.0.1:11434/v1", Some("k")));
    assert_eq!(ollama.prices["llama3"].output, 2.0);
    assert_eq!(config.providers["anthropic"].api_key.as_deref(), Some("a"));
    assert!(!config.providers.contains_key("openai"));

    let bad = write(&dir, "[providers.mystery]\nbase_url = \"http://x\"\n");
    let text = Layers::load(Some(&bad), env_of(&[])).unwrap().resolve().unwrap_err().to_string();
    assert!(text.contains("providers.mystery") && text.contains("kind"), "{text}");
    let typo = write(&dir, "[providers.openai]\nbase_ur = \"http://x\"\n");
    let text = Layers::load(Some(&typo), env_of(&[])).unwrap_err().to_string();
    assert!(text.contains("base_ur"), "{text}");
}

#[test]
fn errors_name_the_key_and_the_source() {
    let err = Layers::load(None, env_of(&[("AGENTRY_LISTEN", "nonsense")])).unwrap().resolve().unwrap_err();
    let text = err.to_string();
    assert!(text.contains("`listen`") && text.contains("AGENTRY_LISTEN") && text.contains("nonsense"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let file = write(&dir, "max_body_bytes = \"lots\"\n");
    let text = Layers::load(Some(&file), env_of(&[])).unwrap().resolve().unwrap_err().to_string();
    assert!(text.contains("`max_body_bytes`") && text.contains("agentry.toml"), "{text}");

    let file = write(&dir, "lissen = \"x\"\n");
    let text = Layers::load(Some(&file), env_of(&[])).unwrap_err().to_string();
    assert!(text.contains("unknown key `lissen`"), "{text}");

    let file = write(&dir, "listen = [1]\n");
    let text = Layers::load(Some(&file), env_of(&[])).unwrap_err().to_string();
    assert!(text.contains("`listen`") && text.contains("array"), "{text}");

    let text = Layers::load(None, env_of(&[("AGENTRY_DATABASE_URL", "mysql://x")]))
        .unwrap()
        .resolve()
        .unwrap_err()
        .to_string();
    assert!(text.contains("`database_url`") && text.contains("mysql"), "{text}");

    let text = Layers::load(None, env_of(&[("AGENTRY_AGENTS_DIR", "/no/such/dir")]))
        .unwrap()
        .resolve()
        .unwrap_err()
        .to_string();
    assert!(text.contains("`agents_dir`"), "{text}");
}
