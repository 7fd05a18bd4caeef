// A dropped transport loses nothing: the three ways a socket.io-client 4.7.4
// comes back, each after the connection was cut (through a TCP proxy, so what
// was in flight is lost) 200 tokens into a 3000-word answer.
//
// - `resume_stream {threadId, lastSeq}`: exact, no event twice.
// - socket.io-client's own reconnection (connection state recovery: the
//   server's `pid` and the offset of the last event): exact, no event twice.
// - a new socket with a bare `resume_stream {threadId}` (what the official
//   clients send): no gap; events since the last pong-confirmed position come
//   again with their `seq`, and dropping those gives the exact text.

import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';

import { io } from 'socket.io-client';

import {
  AgentryServer,
  EventLog,
  TcpProxy,
  connectSocket,
  sessionCaller,
  serverTest,
  sleep,
  tokenText,
} from './harness.mjs';

const TEXT = Array.from({ length: 3000 }, (_, i) => `w${i + 1}`).join(' ');
const CUT_AFTER = 200;
const AGENT = {
  'long-echo.toml': `\
id = "long-echo"
name = "Long echo"
model = "scripted:echo"
[script]
token_delay_ms = 1
`,
};

/** The events of a turn with each `seq` once (the first time it came), in `seq` order. */
function dedupe(events) {
  const bySeq = new Map();
  for (const ev of events) if (!bySeq.has(ev.seq)) bySeq.set(ev.seq, ev);
  return [...bySeq.values()].sort((a, b) => a.seq - b.seq);
}

function assertWhole(events, turnId) {
  events.forEach((ev, i) => assert.equal(ev.seq, i + 1, `seq ${ev.seq} at position ${i} of turn ${turnId}`));
  assert.equal(events.at(-1).type, 'done');
  assert.equal(events.at(-1).status, 'completed');
  assert.equal(tokenText(events), TEXT);
}

function repeated(events) {
  const seen = new Set();
  return events.filter((ev) => seen.has(ev.seq) || !seen.add(ev.seq)).map((ev) => ev.seq);
}

describe('lossless resume after a cut transport', () => {
  /** @type {AgentryServer} */
  let srv;
  /** @type {TcpProxy} */
  let proxy;
  const it = (name, fn) => serverTest(() => srv, name, fn, { timeout: 60_000 });

  before(async () => {
    srv = await new AgentryServer({ agentFiles: AGENT }).start();
    proxy = await new TcpProxy(srv.port).start();
  });

  after(async () => {
    await proxy?.close();
    if (!srv) return;
    await srv.stopGracefully();
    await srv.removeFiles();
  });

  /**
   * Sends the long message through the proxy and cuts the proxy after CUT_AFTER tokens (with
   * `afterPing`, after the next Engine.IO ping and its pong too, so the server has a confirmed
   * position).
   */
  async function startAndCut(socket, log, { afterPing = false } = {}) {
    socket.emit('message', { message: TEXT, agentId: 'long-echo' });
    const meta = await log.waitFor((ev) => ev.type === 'meta', { what: 'meta' });
    await log.waitForTokens(CUT_AFTER, { turnId: meta.turnId, timeout: 20_000 });
    if (afterPing) {
      await new Promise((resolve) => socket.io.engine.once('ping', resolve));
      await sleep(50);
    }
    proxy.cut();
    return meta;
  }

  it('resume_stream with lastSeq gives the exact text, no event twice', async ({ sockets }) => {
    const caller = await sessionCaller(srv);
    const one = await connectSocket(proxy, { auth: caller.auth, track: sockets });
    const meta = await startAndCut(one.socket, one.log);
    await one.log.waitFor(() => one.log.disconnects.length > 0, { what: 'the disconnect' }).catch(() => {});
    const seen = one.log.ofTurn(meta.turnId);
    const lastSeq = Math.max(...seen.map((ev) => ev.seq));

    const two = await connectSocket(srv, { auth: caller.auth, track: sockets });
    two.socket.emit('resume_stream', { threadId: meta.thread_id, lastSeq });
    await two.log.waitForDone(meta.turnId, { timeout: 30_000 });
    const rest = two.log.ofTurn(meta.turnId);
    assert.equal(rest[0].seq, lastSeq + 1);
    const all = [...seen, ...rest];
    assert.deepEqual(repeated(all), []);
    assertWhole(all, meta.turnId);
  });

  it("socket.io-client's own reconnection recovers the session: exact, no event twice", async ({ sockets }) => {
    const caller = await sessionCaller(srv);
    const socket = io(`${proxy.baseUrl}/agent`, {
      path: '/socket.io/',
      transports: ['websocket'],
      forceNew: true,
      reconnection: true,
      reconnectionDelay: 100,
      reconnectionDelayMax: 200,
      auth: caller.auth,
    });
    sockets.add(socket);
    const log = new EventLog(socket);
    const connects = [];
    socket.on('connect', () => connects.push(socket.recovered));
    await new Promise((resolve, reject) => {
      socket.once('connected', resolve);
      socket.once('connect_error', reject);
    });
    const meta = await startAndCut(socket, log);
    await log.waitForDone(meta.turnId, { timeout: 30_000 });
    assert.deepEqual(connects, [false, true], 'connected, then reconnected with the session recovered');
    const events = log.ofTurn(meta.turnId);
    assert.deepEqual(repeated(events), [], 'no event came twice');
    assertWhole(events, meta.turnId);
  });

  it('a bare resume_stream on a new socket gives the exact text once seen seqs are dropped', async ({ sockets }) => {
    const caller = await sessionCaller(srv);
    const one = await connectSocket(proxy, { auth: caller.auth, track: sockets });
    const meta = await startAndCut(one.socket, one.log, { afterPing: true });
    const seen = one.log.ofTurn(meta.turnId);
    const lastSeq = Math.max(...seen.map((ev) => ev.seq));

    const two = await connectSocket(srv, { auth: caller.auth, track: sockets });
    two.socket.emit('resume_stream', { threadId: meta.thread_id });
    await two.log.waitForDone(meta.turnId, { timeout: 30_000 });
    const rest = two.log.ofTurn(meta.turnId);
    assert.ok(rest[0].seq <= lastSeq + 1, `no gap: resumed at ${rest[0].seq}, the client had up to ${lastSeq}`);
    const again = rest.filter((ev) => ev.seq <= lastSeq).length;
    assert.ok(again < lastSeq, `a confirmed position was used (${again} of ${lastSeq} events came again)`);
    assertWhole(dedupe([...seen, ...rest]), meta.turnId);
  });
});
