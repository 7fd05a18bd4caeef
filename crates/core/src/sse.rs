//! The one `text/event-stream` parser (model providers' streams, the SDK's Erdo streams): bytes
//! in, event blocks out.
//!
//! It follows the SSE framing rules: lines end in LF, CRLF or CR (also when a chunk boundary
//! falls between the CR and the LF); a line starting with `:` is a comment; `field: value` loses
//! one space after the colon; a blank line ends a block, and a block without `data` is no event;
//! a leading byte-order mark is dropped. Only `event` and `data` are kept (`id` and `retry` are
//! read and ignored: neither reader resumes a stream by them). Lines are split on ASCII bytes
//! before decoding, so a chunk boundary inside a multi-byte character is harmless; invalid UTF-8
//! becomes U+FFFD.

/// One event block: its `event:` name and its `data:` lines, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseBlock {
    /// The last `event:` value of the block, if any.
    pub event: Option<String>,
    /// Every `data:` line of the block (without the field name).
    pub data: Vec<String>,
}

impl SseBlock {
    /// The event's data as the SSE specification delivers it: the `data:` lines joined by `\n`.
    pub fn data_text(&self) -> String {
        self.data.join("\n")
    }
}

/// Incremental parser; feed it chunks as they arrive, then [`finish`](Self::finish).
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes not yet split into lines.
    pending: Vec<u8>,
    /// The block being read.
    block: SseBlock,
    /// Whether the first line was seen (for the byte-order mark).
    started: bool,
    /// The last byte consumed was a CR: a LF at the start of the next chunk belongs to it.
    after_cr: bool,
}

impl SseParser {
    /// Consumes a chunk; returns the blocks it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<SseBlock> {
        let mut chunk = chunk;
        if self.after_cr && chunk.first() == Some(&b'\n') {
            chunk = &chunk[1..];
        }
        self.after_cr = false;
        self.pending.extend_from_slice(chunk);
        let mut blocks = Vec::new();
        let mut start = 0;
        let mut i = 0;
        while i < self.pending.len() {
            match self.pending[i] {
                b'\n' => {
                    self.line_end(start, i, &mut blocks);
                    i += 1;
                    start = i;
                }
                b'\r' => {
                    self.line_end(start, i, &mut blocks);
                    i += 1;
                    if i == self.pending.len() {
                        self.after_cr = true;
                    } else if self.pending[i] == b'\n' {
                        i += 1;
                    }
                    start = i;
                }
                _ => i += 1,
            }
        }
        self.pending.drain(..start);
        blocks
    }

    /// The end of the stream: the last line and block, even without their terminators (the
    /// official clients read every `data:` line, so a block cut short is still delivered).
    pub fn finish(&mut self) -> Vec<SseBlock> {
        let mut blocks = Vec::new();
        if !self.pending.is_empty() {
            let end = self.pending.len();
            self.line_end(0, end, &mut blocks);
            self.pending.clear();
        }
        if !self.block.data.is_empty() {
            blocks.push(std::mem::take(&mut self.block));
        }
        self.block = SseBlock::default();
        blocks
    }

    fn line_end(&mut self, start: usize, end: usize, blocks: &mut Vec<SseBlock>) {
        let raw = String::from_utf8_lossy(&self.pending[start..end]).into_owned();
        let line = if self.started { raw.as_str() } else { raw.strip_prefix('\u{feff}').unwrap_or(&raw) };
        self.started = true;
        if line.is_empty() {
            // Dispatch; a block without data (only `event:` or comments) is no event.
            let block = std::mem::take(&mut self.block);
            if !block.data.is_empty() {
                blocks.push(block);
            }
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.block.event = Some(value.to_owned()),
            "data" => self.block.data.push(value.to_owned()),
            _ => {} // `id`, `retry` and unknown fields
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{SseBlock, SseParser};

    fn block(event: Option<&str>, data: &[&str]) -> SseBlock {
        SseBlock { event: event.map(str::to_owned), data: data.iter().map(|d| (*d).to_owned()).collect() }
    }

    /// Feeds `input` split at every possible point (and byte by byte) and checks each gives `want`.
    fn check_all_splits(input: &str, want: &[SseBlock]) {
        let bytes = input.as_bytes();
        for cut in 0..=bytes.len() {
            let mut parser = SseParser::default();
            let mut got = parser.feed(&bytes[..cut]);
            got.extend(parser.feed(&bytes[cut..]));
            got.extend(parser.finish());
            assert_eq!(got, want, "split at {cut} of {input:?}");
        }
        let mut parser = SseParser::default();
        let mut got = Vec::new();
        for byte in bytes {
            got.extend(parser.feed(std::slice::from_ref(byte)));
        }
        got.extend(parser.finish());
        assert_eq!(got, want, "byte by byte: {input:?}");
    }

    #[test]
    fn events_data_comments_and_line_endings() {
        let want = vec![
            block(Some("bot started"), &[r#"{"type":"bot started"}"#]),
            block(Some("message content delta"), &[r#"{"payload":"héllo"}"#]),
            block(None, &["a", "b"]),
        ];
        for newline in ["\n", "\r\n", "\r"] {
            let input = [
                ": keep-alive",
                "event: bot started",
                r#"data: {"type":"bot started"}"#,
                "",
                "event:message content delta",
                "id: 7",
                "retry: 1000",
                r#"data: {"payload":"héllo"}"#,
                "",
                "event: only-a-name",
                "",
                "data: a",
                "data:b",
                "",
                "",
            ]
            .join(newline);
            check_all_splits(&input, &want);
        }
    }

    #[test]
    fn provider_streams_read_whole() {
        // OpenAI: data only, `[DONE]` last and maybe without its blank line; Anthropic: named events.
        let input =
            "data: {\"x\":1}\r\n\r\n: keep-alive\n\ndata: one\ndata: two\n\nevent: ping\ndata: {}\n\ndata: [DONE]";
        let mut parser = SseParser::default();
        let mut got = parser.feed(input.as_bytes());
        got.extend(parser.finish());
        let texts: Vec<(Option<String>, String)> = got.iter().map(|b| (b.event.clone(), b.data_text())).collect();
        assert_eq!(
            texts,
            [
                (None, r#"{"x":1}"#.to_owned()),
                (None, "one\ntwo".to_owned()),
                (Some("ping".to_owned()), "{}".to_owned()),
                (None, "[DONE]".to_owned())
            ]
        );
    }

    #[test]
    fn a_character_split_between_chunks_is_whole() {
        let bytes = "data: héllo\n\n".as_bytes();
        let cut = "data: h".len() + 1; // inside the two bytes of é
        let mut parser = SseParser::default();
        let mut got = parser.feed(&bytes[..cut]);
        got.extend(parser.feed(&bytes[cut..]));
        assert_eq!(got, [block(None, &["héllo"])]);
    }

    #[test]
    fn a_byte_order_mark_and_a_missing_final_blank_line_are_tolerated() {
        check_all_splits("\u{feff}data: {}\n\ndata: last", &[block(None, &["{}"]), block(None, &["last"])]);
        check_all_splits("data\n\n", &[block(None, &[""])]);
    }
}
