//! Provider streams as events: a streaming HTTP response read chunk by chunk through the one SSE
//! parser, [`agentry_core::sse`], with a time limit on silence.

use agentry_core::sse::{SseBlock, SseParser};

/// The events of a streaming HTTP response, batch by batch as chunks arrive.
pub(crate) struct ResponseEvents {
    response: reqwest::Response,
    parser: SseParser,
    timeout: std::time::Duration,
    ended: bool,
}

impl ResponseEvents {
    /// Reads `response`; a gap of `timeout` without data fails the stream.
    pub(crate) fn new(response: reqwest::Response, timeout: std::time::Duration) -> Self {
        ResponseEvents { response, parser: SseParser::default(), timeout, ended: false }
    }

    /// The events completed by the next chunk; `None` once the body has ended.
    pub(crate) async fn next_batch(&mut self) -> Result<Option<Vec<SseBlock>>, crate::ProviderError> {
        use crate::ProviderError::Unavailable;
        if self.ended {
            return Ok(None);
        }
        let chunk = tokio::time::timeout(self.timeout, self.response.chunk())
            .await
            .map_err(|_| Unavailable("the stream went silent".into()))?
            .map_err(|e| Unavailable(format!("the stream broke: {e}")))?;
        Ok(Some(match chunk {
            Some(bytes) => self.parser.feed(&bytes),
            None => {
                self.ended = true;
                self.parser.finish()
            }
        }))
    }
}
