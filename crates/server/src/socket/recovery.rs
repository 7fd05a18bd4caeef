//! What a socket client has, so a dropped transport loses nothing.
//!
//! - **Written vs confirmed.** The connection's writer notes the last event of each turn it
//!   wrote ([`Positions`]). An Engine.IO pong confirms every frame written before its ping (the
//!   client answers pings in order), so each ping carries a snapshot of what was written, and its
//!   pong moves that snapshot to *confirmed*. While a turn streams, pings go out every half second, so
//!   the confirmed position trails what the client has by about half a second. A clean WebSocket close
//!   handshake at shutdown confirms everything written.
//! - **Bare `resume_stream {threadId}`** (what both official clients send) continues after the
//!   last confirmed position of the user's view of that thread, kept in memory and in the store
//!   for any replica: no event is ever skipped; events since the last confirmation may come
//!   again, with the same `seq`. A client that never pongs (the Python `platos-client`) has no
//!   confirmed position and gets the turn from its start, unless the server closed the socket
//!   cleanly (a restart), which confirms what it wrote.
//! - **Connection state recovery** (socket.io-client ≥ 4.6 reconnecting on its own): the CONNECT
//!   answer carries a private id (`pid`); every streamed `agent_event` carries an offset
//!   (`<turnId>:<seq>`) as its last argument; a client that reconnects presents both, and the
//!   server answers with the same `pid` and the events after the offset — exact, no repeat. The
//!   session (its streams and joined threads) is kept for two minutes after a transport loss, in
//!   memory and in the store, so the reconnection may land on any replica. Without the session
//!   (expired, or its replica died) the turn named by the offset still resumes exactly after it,
//!   under a new `pid`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Pings awaiting a pong beyond which a connection stops trying to confirm (its client does not
/// answer pings).
const MAX_OUTSTANDING_PINGS: usize = 64;

/// The last event of a turn written to (or confirmed by) a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Position {
    pub thread_id: Arc<str>,
    pub seq: i64,
}

/// Per-turn positions.
pub(super) type PositionMap = HashMap<Arc<str>, Position>;

/// What one connection wrote and what its client confirmed.
#[derive(Debug, Default)]
pub(super) struct Positions {
    written: PositionMap,
    /// Snapshots of `written` taken as each outstanding ping was written, oldest first.
    pings: VecDeque<PositionMap>,
    /// The client does not answer pings; nothing it does is confirmed any more.
    unconfirmable: bool,
}

impl Positions {
    /// The writer wrote an event of a turn.
    pub fn wrote(&mut self, turn_id: &Arc<str>, thread_id: &Arc<str>, seq: i64) {
        match self.written.get_mut(turn_id) {
            Some(position) => position.seq = position.seq.max(seq),
            None => {
                self.written.insert(turn_id.clone(), Position { thread_id: thread_id.clone(), seq });
            }
        }
    }

    /// The writer wrote a ping.
    pub fn pinged(&mut self) {
        if self.unconfirmable {
            return;
        }
        if self.pings.len() >= MAX_OUTSTANDING_PINGS {
            self.pings.clear();
            self.unconfirmable = true;
            return;
        }
        self.pings.push_back(self.written.clone());
    }

    /// A pong arrived: what its ping's snapshot confirms.
    pub fn ponged(&mut self) -> Option<PositionMap> {
        self.pings.pop_front()
    }

    /// Everything written (confirmed by a clean close handshake).
    pub fn written(&self) -> PositionMap {
        self.written.clone()
    }

    /// Whether the client may still confirm something.
    pub fn confirming(&self) -> bool {
        !self.unconfirmable
    }

    /// Forgets a finished stream.
    pub fn forget(&mut self, turn_id: &str) {
        self.written.remove(turn_id);
    }
}

/// A recovery offset: `<turnId>:<seq>`.
pub(super) fn offset(turn_id: &str, seq: i64) -> String {
    format!("{turn_id}:{seq}")
}

/// Reads an offset.
pub(super) fn parse_offset(offset: &str) -> Option<(&str, i64)> {
    let (turn_id, seq) = offset.rsplit_once(':')?;
    Some((turn_id, seq.parse().ok()?)).filter(|(turn, seq)| !turn.is_empty() && *seq >= 0)
}

/// What a disconnected session followed, kept for its recovery.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct SessionState {
    /// Turns it was streaming, with the position its client confirmed.
    pub streams: Vec<StreamState>,
    /// Threads it had joined.
    pub rooms: Vec<String>,
}

/// One stream of a disconnected session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct StreamState {
    pub turn_id: String,
    pub thread_id: String,
    pub confirmed: i64,
}

impl SessionState {
    /// Whether there is anything to recover.
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty() && self.rooms.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pong_confirms_what_was_written_before_its_ping() {
        let (turn, thread): (Arc<str>, Arc<str>) = ("trn_1".into(), "thr_1".into());
        let mut positions = Positions::default();
        positions.wrote(&turn, &thread, 3);
        positions.pinged();
        positions.wrote(&turn, &thread, 9);
        positions.pinged();
        assert_eq!(positions.ponged().unwrap()[&turn].seq, 3);
        assert_eq!(positions.ponged().unwrap()[&turn].seq, 9);
        assert!(positions.ponged().is_none());
    }

    #[test]
    fn a_client_that_never_pongs_stops_being_tracked() {
        let mut positions = Positions::default();
        for _ in 0..=MAX_OUTSTANDING_PINGS {
            positions.pinged();
        }
        assert!(!positions.confirming());
        assert!(positions.ponged().is_none());
    }

    #[test]
    fn offsets_round_trip() {
        assert_eq!(parse_offset(&offset("trn_01ab", 42)), Some(("trn_01ab", 42)));
        assert_eq!(parse_offset("nonsense"), None);
        assert_eq!(parse_offset(":3"), None);
        assert_eq!(parse_offset("trn:-1"), None);
    }
}
