//! A small Server-Sent Events decoder for provider streams: feed it chunks as they arrive, get
//! complete events (`event:` name and joined `data:` lines) back. Accepts `\n` and `\r\n`.

/// One decoded event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Incremental decoder.
#[derive(Debug, Default)]
pub struct SseDecoder {
    line: String,
    event: Option<String>,
    data: Vec<String>,
}

impl SseDecoder {
    /// Feeds bytes (UTF-8 split points are handled by the caller passing whole chunks of text).
    pub fn push(&mut self, text: &str) -> Vec<SseEvent> {
        let mut out = Vec::new();
        for c in text.chars() {
            if c == '\n' {
                let line = std::mem::take(&mut self.line);
                let line = line.strip_suffix('\r').unwrap_or(&line);
                self.line_complete(line, &mut out);
            } else {
                self.line.push(c);
            }
        }
        out
    }

    /// Ends the stream: a final event without its blank line is still delivered.
    pub fn finish(&mut self) -> Option<SseEvent> {
        let mut out = Vec::new();
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.line_complete(&line, &mut out);
        }
        self.line_complete("", &mut out);
        out.pop()
    }

    fn line_complete(&mut self, line: &str, out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            if !self.data.is_empty() || self.event.is_some() {
                out.push(SseEvent { event: self.event.take(), data: std::mem::take(&mut self.data).join("\n") });
            }
            return;
        }
        if line.starts_with(':') {
            return; // comment / keep-alive
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => self.data.push(value.to_owned()),
            _ => {}
        }
    }
}

/// Decodes UTF-8 across chunk boundaries.
#[derive(Debug, Default)]
pub struct Utf8Chunks {
    pending: Vec<u8>,
}

impl Utf8Chunks {
    /// Appends bytes and returns the longest valid UTF-8 prefix (invalid bytes become U+FFFD).
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        match std::str::from_utf8(&self.pending) {
            Ok(text) => {
                let text = text.to_owned();
                self.pending.clear();
                text
            }
            Err(err) if err.error_len().is_none() => {
                let valid = err.valid_up_to();
                let text = String::from_utf8_lossy(&self.pending[..valid]).into_owned();
                self.pending.drain(..valid);
                text
            }
            Err(_) => String::from_utf8_lossy(&std::mem::take(&mut self.pending)).into_owned(),
        }
    }
}

/// The events of a streaming HTTP response, batch by batch as chunks arrive.
pub(crate) struct ResponseEvents {
    response: reqwest::Response,
    decoder: SseDecoder,
    utf8: Utf8Chunks,
    timeout: std::time::Duration,
    ended: bool,
}

impl ResponseEvents {
    /// Reads `response`; a gap of `timeout` without data fails the stream.
    pub(crate) fn new(response: reqwest::Response, timeout: std::time::Duration) -> Self {
        ResponseEvents { response, decoder: SseDecoder::default(), utf8: Utf8Chunks::default(), timeout, ended: false }
    }

    /// The events completed by the next chunk; `None` once the body has ended.
    pub(crate) async fn next_batch(&mut self) -> Result<Option<Vec<SseEvent>>, crate::ProviderError> {
        use crate::ProviderError::Unavailable;
        if self.ended {
            return Ok(None);
        }
        let chunk = tokio::time::timeout(self.timeout, self.response.chunk())
            .await
            .map_err(|_| Unavailable("the stream went silent".into()))?
            .map_err(|e| Unavailable(format!("the stream broke: {e}")))?;
        Ok(Some(match chunk {
            Some(bytes) => self.decoder.push(&self.utf8.push(&bytes)),
            None => {
                self.ended = true;
                self.decoder.finish().into_iter().collect()
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_and_crlf() {
        let mut decoder = SseDecoder::default();
        let mut events = decoder.push("event: a\r\ndata: {\"x\":");
        events.extend(decoder.push("1}\r\n\r\n: keep-alive\n\ndata: one\ndata: two\n\n"));
        events.extend(decoder.push("data: [DONE]"));
        events.extend(decoder.finish());
        assert_eq!(
            events,
            vec![
                SseEvent { event: Some("a".into()), data: "{\"x\":1}".into() },
                SseEvent { event: None, data: "one\ntwo".into() },
                SseEvent { event: None, data: "[DONE]".into() },
            ]
        );
    }

    #[test]
    fn utf8_split_inside_a_character_is_held_back() {
        let mut chunks = Utf8Chunks::default();
        let bytes = "héllo".as_bytes();
        assert_eq!(chunks.push(&bytes[..2]), "h");
        assert_eq!(chunks.push(&bytes[2..]), "éllo");
    }
}
