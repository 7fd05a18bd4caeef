//! `agentry bench model`: the embedded model's prefill and decode speed and peak RSS, next to
//! llama.cpp's on the same GGUF and CPU (llama-cpp-python's OpenAI server, one thread each).
//!
//! Agentry's figures are measured in-process around `LocalModel::generate`; llama.cpp's from the
//! client side of a streamed `/v1/completions` call (time to first token ≈ prefill, then tokens per
//! second), with its peak RSS read from `/proc`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agentry_llm::local::LocalModel;

use crate::bench::proc_status_kib;
use agentry_llm::{ChatMessage, ChatRole};

/// Options of `agentry bench model`.
#[derive(Debug, clap::Args)]
pub struct ModelBench {
    /// The GGUF to measure (default: the smollm2-135m file in the model cache of --data-dir).
    #[arg(long)]
    gguf: Option<PathBuf>,
    /// Python with llama-cpp-python[server] installed, for the llama.cpp figures
    /// (scripts/setup-models makes target/llm-venv/bin/python).
    #[arg(long, env = "AGENTRY_TEST_LLAMA_PYTHON")]
    llama_python: Option<PathBuf>,
    /// Tokens to generate.
    #[arg(long, default_value_t = 64)]
    tokens: usize,
}

/// Figures of one engine.
struct Figures {
    prompt_tokens: usize,
    prefill_tps: f64,
    decode_tps: f64,
    peak_rss_mib: f64,
}

const PROMPT: &str = "Write a short story about a robot who learns to paint.";

/// Runs the benchmark.
pub async fn run(options: ModelBench, default_gguf: PathBuf) -> Result<(), String> {
    let gguf = options.gguf.unwrap_or(default_gguf);
    if !gguf.exists() {
        return Err(format!(
            "{} does not exist (run `agentry models pull smollm2-135m` or pass --gguf)",
            gguf.display()
        ));
    }
    println!("agentry bench model — {} , greedy, {} tokens, 1 thread", gguf.display(), options.tokens);
    let started = Instant::now();
    let model = LocalModel::load(&gguf).map_err(|e| e.to_string())?;
    println!("agentry (candle): loaded in {:.2}s", started.elapsed().as_secs_f64());
    let prompt = model.prompt(&[ChatMessage::text(ChatRole::User, PROMPT)]).map_err(|e| e.to_string())?;
    let ids = model.encode(&prompt).map_err(|e| e.to_string())?;
    let tokens = options.tokens;
    let ours =
        tokio::task::spawn_blocking(move || measure_local(&model, &ids, tokens)).await.map_err(|e| e.to_string())??;
    print_figures("agentry (candle, Q4_1→Q8_0)", &ours);

    let Some(python) = options.llama_python else {
        println!("llama.cpp: not measured (pass --llama-python or set AGENTRY_TEST_LLAMA_PYTHON)");
        return Ok(());
    };
    let theirs = measure_llama_cpp(&python, &gguf, &prompt, ours.prompt_tokens, options.tokens).await?;
    print_figures("llama.cpp (llama-cpp-python)", &theirs);
    println!(
        "ratio agentry/llama.cpp: decode {:.2}x (aim ≥ 0.70x), prefill {:.2}x, peak RSS {:.2}x",
        ours.decode_tps / theirs.decode_tps,
        ours.prefill_tps / theirs.prefill_tps,
        ours.peak_rss_mib / theirs.peak_rss_mib
    );
    Ok(())
}

fn print_figures(engine: &str, f: &Figures) {
    println!(
        "{engine:<30} prefill {:>6.1} tok/s ({} prompt tokens), decode {:>5.1} tok/s, peak RSS {:>6.1} MiB",
        f.prefill_tps, f.prompt_tokens, f.decode_tps, f.peak_rss_mib
    );
}

fn measure_local(model: &LocalModel, ids: &[u32], tokens: usize) -> Result<Figures, String> {
    // Warm-up so first-call allocations do not count.
    let greedy = agentry_llm::local::model::greedy();
    model.generate(ids, 1, &greedy, |_| true).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut stamps: Vec<Instant> = Vec::new();
    let generated = model
        .generate(ids, tokens, &greedy, |_| {
            stamps.push(Instant::now());
            true
        })
        .map_err(|e| e.to_string())?;
    let first = stamps.first().copied().ok_or("the model generated nothing")?;
    let last = stamps.last().copied().unwrap_or(first);
    let prefill = first.duration_since(started).as_secs_f64();
    let decode = last.duration_since(first).as_secs_f64();
    if generated < 2 {
        eprintln!("warning: only {generated} tokens generated; decode speed is not meaningful");
    }
    Ok(Figures {
        prompt_tokens: ids.len(),
        prefill_tps: ids.len() as f64 / prefill,
        decode_tps: (stamps.len().max(2) - 1) as f64 / decode.max(f64::EPSILON),
        peak_rss_mib: proc_status_kib(std::process::id(), "VmHWM") as f64 / 1024.0,
    })
}

/// `prompt_tokens` comes from our tokenizer, which tokenises this GGUF exactly as llama.cpp does
/// (the server's stream carries no usage).
async fn measure_llama_cpp(
    python: &PathBuf,
    gguf: &PathBuf,
    prompt: &str,
    prompt_tokens: usize,
    tokens: usize,
) -> Result<Figures, String> {
    let port =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
    let mut child = Command::new(python)
        .args(["-m", "llama_cpp.server", "--model"])
        .arg(gguf)
        .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--n_threads", "1", "--n_ctx", "2048"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start llama_cpp.server: {e}"))?;
    let base = format!("http://127.0.0.1:{port}/v1");
    let http = reqwest::Client::new();
    let result = async {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if http.get(format!("{base}/models")).send().await.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            if Instant::now() > deadline {
                return Err("llama_cpp.server did not start".to_owned());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Warm-up on another prompt (the server reuses a cached prefix of the previous prompt,
        // which would hide the prefill), then the measured run: our rendered prompt, greedy.
        let body = |text: &str, max: usize| {
            serde_json::json!({"prompt": text, "max_tokens": max, "temperature": 0.0, "stream": true})
        };
        let warm_up = http.post(format!("{base}/completions")).json(&body("Hello there.", 1)).send().await;
        let _ = warm_up.map_err(|e| e.to_string())?.bytes().await;
        let started = Instant::now();
        let mut response =
            http.post(format!("{base}/completions")).json(&body(prompt, tokens)).send().await.map_err(|e| e.to_string())?;
        let mut stamps = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
            let text = String::from_utf8_lossy(&chunk);
            stamps.extend(text.lines().filter(|l| l.starts_with("data: ") && l.contains("\"text\"")).map(|_| Instant::now()));
        }
        let first = *stamps.first().ok_or("llama.cpp generated nothing")?;
        let last = *stamps.last().unwrap_or(&first);
        Ok(Figures {
            prompt_tokens,
            prefill_tps: prompt_tokens as f64 / first.duration_since(started).as_secs_f64(),
            decode_tps: (stamps.len().max(2) - 1) as f64 / last.duration_since(first).as_secs_f64().max(f64::EPSILON),
            peak_rss_mib: proc_status_kib(child.id(), "VmHWM") as f64 / 1024.0,
        })
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    result
}
