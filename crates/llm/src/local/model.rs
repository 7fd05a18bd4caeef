//! A GGUF model run in-process with candle on the CPU.
//!
//! - Weights: `quantized_llama` (llama-architecture GGUFs such as SmolLM2). candle has no SIMD
//!   kernel for Q4_1, so Q4_1 tensors are re-quantised to Q8_0 at load (≈3× faster decode).
//! - Tokenizer: rebuilt from the GGUF metadata (`tokenizer.ggml.*`: BPE vocab and merges,
//!   digits split individually, byte-level, control tokens as specials) — candle's own helper
//!   tokenises SmolLM2 differently from llama.cpp.
//! - Prompt: the GGUF's `tokenizer.chat_template`, rendered with minijinja.
//! - Decoding: the agent's `[sampling]`. By default the likeliest token (temperature 0: the same
//!   prompt gives the same answer) with a repetition penalty of 1.1 over the last 64 tokens of the
//!   answer, which keeps the small model from looping on open prompts without pushing it off the
//!   question's own words; penalty 1 is greedy decoding exactly as llama.cpp does it. A temperature
//!   above 0 samples (top-p 0.9 unless set) from the agent's seed (default 0). Generation stops at
//!   the end-of-turn token.

use std::collections::HashMap;
use std::io::Cursor;
use std::path::Path;
use std::sync::Mutex;

use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use candle_core::{Device, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};
use candle_transformers::models::quantized_llama::{MAX_SEQ_LEN, ModelWeights};
use tokenizers::Tokenizer;

use crate::{ChatMessage, ChatRole, ProviderError};

/// What an unset `[sampling]` key means for the embedded model.
pub const DEFAULT_TEMPERATURE: f64 = 0.0;
/// Default nucleus (when the temperature is above 0).
pub const DEFAULT_TOP_P: f64 = 0.9;
/// Default repetition penalty.
pub const DEFAULT_REPETITION_PENALTY: f64 = 1.1;
/// How many recent tokens the repetition penalty looks at.
const REPETITION_WINDOW: usize = 64;

/// Greedy decoding without a penalty: what llama.cpp's reference answer uses.
pub fn greedy() -> agentry_core::SamplingSpec {
    agentry_core::SamplingSpec { temperature: Some(0.0), repetition_penalty: Some(1.0), ..Default::default() }
}

/// A loaded model, ready to generate. One generation at a time (the KV cache is per model).
pub struct LocalModel {
    weights: Mutex<ModelWeights>,
    tokenizer: Tokenizer,
    template: String,
    eos: u32,
    bos_token: String,
    eos_token: String,
}

impl std::fmt::Debug for LocalModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalModel").field("eos", &self.eos).finish_non_exhaustive()
    }
}

fn load_error(path: &Path, what: impl std::fmt::Display) -> ProviderError {
    ProviderError::NotConfigured(format!("cannot load the model {}: {what}", path.display()))
}

impl LocalModel {
    /// Loads a GGUF file. Fails — naming the file and the cause — for a missing file, a corrupt
    /// GGUF or an architecture other than llama.
    pub fn load(path: &Path) -> Result<Self, ProviderError> {
        let bytes = std::fs::read(path).map_err(|e| load_error(path, e))?;
        let mut reader = Cursor::new(&bytes);
        let content =
            gguf_file::Content::read(&mut reader).map_err(|e| load_error(path, format!("not a GGUF file ({e})")))?;
        let meta = |key: &str| content.metadata.get(key);
        let architecture = meta("general.architecture").and_then(|v| v.to_string().ok()).cloned().unwrap_or_default();
        if architecture != "llama" {
            return Err(load_error(path, format!("architecture `{architecture}` is not supported (llama only)")));
        }
        let tokenizer = tokenizer_from_gguf(&content).map_err(|e| load_error(path, e))?;
        let template = meta("tokenizer.chat_template")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .ok_or_else(|| load_error(path, "no tokenizer.chat_template in the metadata"))?;
        let token_id = |key: &str| meta(key).and_then(|v| v.to_u32().ok());
        let eos = token_id("tokenizer.ggml.eos_token_id").ok_or_else(|| load_error(path, "no eos token id"))?;
        let token_text = |id: Option<u32>| id.and_then(|id| tokenizer.id_to_token(id)).unwrap_or_default();
        let bos_token = token_text(token_id("tokenizer.ggml.bos_token_id"));
        let eos_token = token_text(Some(eos));

        // Re-quantise Q4_1 tensors to Q8_0, write an in-memory GGUF and load the weights from it.
        let device = Device::Cpu;
        let mut tensors = Vec::with_capacity(content.tensor_infos.len());
        for name in content.tensor_infos.keys() {
            let tensor = content.tensor(&mut reader, name, &device).map_err(|e| load_error(path, e))?;
            let tensor = if tensor.dtype() == GgmlDType::Q4_1 {
                let dense = tensor.dequantize(&device).map_err(|e| load_error(path, e))?;
                QTensor::quantize(&dense, GgmlDType::Q8_0).map_err(|e| load_error(path, e))?
            } else {
                tensor
            };
            tensors.push((name.clone(), tensor));
        }
        let metadata: Vec<(&str, &gguf_file::Value)> = content.metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let mut requantised = Cursor::new(Vec::new());
        gguf_file::write(&mut requantised, &metadata, &tensor_refs).map_err(|e| load_error(path, e))?;
        drop(tensors);
        requantised.set_position(0);
        let content = gguf_file::Content::read(&mut requantised).map_err(|e| load_error(path, e))?;
        let weights = ModelWeights::from_gguf(content, &mut requantised, &device).map_err(|e| load_error(path, e))?;
        Ok(LocalModel { weights: Mutex::new(weights), tokenizer, template, eos, bos_token, eos_token })
    }

    /// Renders the chat template for `messages`, ending with the assistant's turn opening.
    pub fn prompt(&self, messages: &[ChatMessage]) -> Result<String, ProviderError> {
        let messages: Vec<HashMap<String, String>> = messages
            .iter()
            .map(|m| {
                // The chat template knows system/user/assistant; tool results are shown as user text.
                let (role, content) = match m.role {
                    ChatRole::System => ("system", m.content.clone()),
                    ChatRole::User => ("user", m.content.clone()),
                    ChatRole::Assistant => ("assistant", m.content.clone()),
                    ChatRole::Tool => ("user", format!("Tool result: {}", m.content)),
                };
                HashMap::from([("role".to_owned(), role.to_owned()), ("content".to_owned(), content)])
            })
            .collect();
        let mut env = minijinja::Environment::new();
        env.add_template("chat", &self.template)
            .map_err(|e| ProviderError::Unavailable(format!("the model's chat template does not parse: {e}")))?;
        let template = env.get_template("chat").map_err(|e| ProviderError::Unavailable(e.to_string()))?;
        template
            .render(minijinja::context! {
                messages => messages,
                add_generation_prompt => true,
                bos_token => &self.bos_token,
                eos_token => &self.eos_token,
            })
            .map_err(|e| ProviderError::Unavailable(format!("rendering the chat template failed: {e}")))
    }

    /// Token ids of a rendered prompt.
    pub fn encode(&self, prompt: &str) -> Result<Vec<u32>, ProviderError> {
        self.tokenizer
            .encode(prompt, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| ProviderError::Unavailable(format!("tokenising the prompt failed: {e}")))
    }

    /// Generates up to `max_tokens` after `prompt_ids` as `sampling` says, calling `emit` with each
    /// piece of text as it decodes; stops early when `emit` returns false (the caller went away).
    /// Returns the number of tokens generated.
    pub fn generate(
        &self,
        prompt_ids: &[u32],
        max_tokens: usize,
        sampling: &agentry_core::SamplingSpec,
        mut emit: impl FnMut(String) -> bool,
    ) -> Result<usize, ProviderError> {
        let failed = |e: candle_core::Error| ProviderError::Unavailable(format!("local model: {e}"));
        if prompt_ids.is_empty() {
            return Ok(0);
        }
        if prompt_ids.len() >= MAX_SEQ_LEN {
            return Err(ProviderError::Unavailable(format!(
                "the prompt has {} tokens; this model's context holds {MAX_SEQ_LEN}",
                prompt_ids.len()
            )));
        }
        let budget = max_tokens.min(MAX_SEQ_LEN - prompt_ids.len());
        let mut weights = self.weights.lock().unwrap_or_else(|p| p.into_inner());
        let temperature = sampling.temperature.unwrap_or(DEFAULT_TEMPERATURE);
        let method = match sampling.top_p.unwrap_or(DEFAULT_TOP_P) {
            _ if temperature <= 0.0 => Sampling::ArgMax,
            p if p < 1.0 => Sampling::TopP { p, temperature },
            _ => Sampling::All { temperature },
        };
        let mut sampler = LogitsProcessor::from_sampling(sampling.seed.unwrap_or(0), method);
        let penalty = sampling.repetition_penalty.unwrap_or(DEFAULT_REPETITION_PENALTY) as f32;
        // Only the answer so far counts: penalising the prompt's words would push the model away
        // from the very terms the question asks about.
        let mut context: Vec<u32> = Vec::with_capacity(budget);
        let penalised = |logits: Tensor, context: &[u32]| -> Result<Tensor, candle_core::Error> {
            if penalty == 1.0 {
                return Ok(logits);
            }
            let recent = &context[context.len().saturating_sub(REPETITION_WINDOW)..];
            candle_transformers::utils::apply_repeat_penalty(&logits, penalty, recent)
        };
        let mut decoder = self.tokenizer.decode_stream(true);
        let input = Tensor::new(prompt_ids, &Device::Cpu).and_then(|t| t.unsqueeze(0)).map_err(failed)?;
        // Index 0 makes every layer start a fresh KV cache.
        let logits = weights.forward(&input, 0).and_then(|l| l.squeeze(0)).map_err(failed)?;
        let mut next = sampler.sample(&penalised(logits, &context).map_err(failed)?).map_err(failed)?;
        let mut generated = 0;
        while generated < budget && next != self.eos {
            generated += 1;
            context.push(next);
            if let Some(text) =
                decoder.step(next).map_err(|e| ProviderError::Unavailable(format!("decoding failed: {e}")))?
                && !emit(text)
            {
                break;
            }
            if generated == budget {
                break;
            }
            let input = Tensor::new(&[next], &Device::Cpu).and_then(|t| t.unsqueeze(0)).map_err(failed)?;
            let logits =
                weights.forward(&input, prompt_ids.len() + generated - 1).and_then(|l| l.squeeze(0)).map_err(failed)?;
            next = sampler.sample(&penalised(logits, &context).map_err(failed)?).map_err(failed)?;
        }
        Ok(generated)
    }
}

/// Builds the BPE tokenizer described by a GGUF's `tokenizer.ggml.*` metadata.
fn tokenizer_from_gguf(content: &gguf_file::Content) -> Result<Tokenizer, String> {
    use tokenizers::models::bpe::{BPE, Vocab};
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::pre_tokenizers::digits::Digits;
    use tokenizers::pre_tokenizers::sequence::Sequence;
    use tokenizers::{AddedToken, decoders};

    let list = |key: &str| -> Result<&Vec<gguf_file::Value>, String> {
        content
            .metadata
            .get(key)
            .ok_or_else(|| format!("no {key} in the metadata"))?
            .to_vec()
            .map_err(|e| e.to_string())
    };
    let model =
        content.metadata.get("tokenizer.ggml.model").and_then(|v| v.to_string().ok()).cloned().unwrap_or_default();
    if model != "gpt2" {
        return Err(format!("tokenizer model `{model}` is not supported (BPE/gpt2 only)"));
    }
    let tokens: Vec<String> = list("tokenizer.ggml.tokens")?
        .iter()
        .map(|v| v.to_string().cloned().map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let merges = list("tokenizer.ggml.merges")?
        .iter()
        .map(|v| {
            let merge = v.to_string().map_err(|e| e.to_string())?;
            merge
                .split_once(' ')
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .ok_or_else(|| format!("bad merge `{merge}`"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let types: Vec<i32> = match content.metadata.get("tokenizer.ggml.token_type") {
        Some(value) => value.to_vec().map_err(|e| e.to_string())?.iter().map(|v| v.to_i32().unwrap_or(1)).collect(),
        None => Vec::new(),
    };
    let vocab: Vocab = tokens.iter().enumerate().map(|(id, token)| (token.clone(), id as u32)).collect();
    let bpe = BPE::builder().vocab_and_merges(vocab, merges).build().map_err(|e| e.to_string())?;
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(Sequence::new(vec![
        Digits::new(true).into(),
        ByteLevel::new(false, true, true).into(),
    ])));
    tokenizer.with_decoder(Some(decoders::byte_level::ByteLevel::default()));
    // Control tokens (type 3), e.g. <|im_start|>, are matched whole.
    let specials: Vec<AddedToken> = tokens
        .iter()
        .zip(types.iter())
        .filter(|(_, kind)| **kind == 3)
        .map(|(token, _)| AddedToken::from(token.clone(), true))
        .collect();
    tokenizer.add_special_tokens(specials).map_err(|e| format!("special tokens: {e}"))?;
    Ok(tokenizer)
}
