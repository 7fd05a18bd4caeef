// End-to-end tests of the realtime lane: socket.io-client 4.7.4 (the
// transport @platosdev/client uses) against a real `agentry serve`.
//
//   AGENTRY_BIN=target/debug/agentry tests/e2e/run-node.sh
//
// One server is shared by the `socket.io /agent` suite; each test works as a
// fresh user. The shutdown test starts a private server. When a test fails,
// the tail of the server log is appended to the failure.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  AgentryServer,
  API_KEY,
  SERVICE_SECRET,
  api,
  assertCompletedTurn,
  assertTurnFrame,
  assertUsage,
  connectSocket,
  createThread,
  expectConnectError,
  listMessages,
  newUser,
  onceEvent,
  operatorCaller,
  runTurn,
  sessionCaller,
  sessionClaims,
  shape,
  signJwt,
  sleep,
  tokenText,
  words,
  serverTest,
} from './harness.mjs';

const SYSTEM_PROMPT_WORDS = 1; // "Echo." of slow-echo and paced-echo

// Irregular whitespace on purpose: tokens carry the whitespace before their
// word, so their concatenation must reproduce the message exactly.
const SHORT = 'The quick  brown fox\tjumps over\nthe lazy dog, twice.';
// 40 words at 30 ms a token: ~1.2 s of streaming on slow-echo.
const LONG = Array.from({ length: 40 }, (_, i) => `word${i + 1}${i % 7 === 3 ? ',' : ''}`).join(' ');

describe('socket.io /agent', () => {
  /** @type {AgentryServer} */
  let srv;
  const it = (name, fn, opts) => serverTest(() => srv, name, fn, opts);

  before(async () => {
    srv = await new AgentryServer().start();
  });

  after(async () => {
    if (!srv) return;
    await srv.stopGracefully();
    await srv.removeFiles();
  });

  // ---------------------------------------------------------------------
  // connecting
  // ---------------------------------------------------------------------

  it('connects with a session token in `auth` and announces `connected`', async ({ sockets }) => {
    const caller = await sessionCaller(srv);
    const { socket, connected } = await connectSocket(srv, { auth: caller.auth, track: sockets });
    assert.equal(connected.status, 'ok');
    assert.equal(connected.organizationId, 'default');
    assert.equal(connected.projectId, 'default');
    assert.equal(connected.environmentId, 'default');
    assert.equal(connected.userId, caller.user);
    assert.equal(connected.socketId, socket.id, 'connected.socketId is the Socket.IO id of this socket');
  });

  it('connects with an API key in `auth` and with credentials in upgrade headers', async ({ sockets }) => {
    const op = operatorCaller();
    const byAuth = await connectSocket(srv, { auth: op.auth, track: sockets });
    assert.equal(byAuth.connected.status, 'ok');
    assert.equal(byAuth.connected.userId, op.user);
    assert.equal(byAuth.connected.organizationId, 'default');

    const byKeyHeaders = await connectSocket(srv, { extraHeaders: op.headers, track: sockets });
    assert.equal(byKeyHeaders.connected.userId, op.user);
    assert.equal(byKeyHeaders.connected.environmentId, 'default');

    const caller = await sessionCaller(srv);
    const byTokenHeader = await connectSocket(srv, { extraHeaders: caller.headers, track: sockets });
    assert.equal(byTokenHeader.connected.userId, caller.user);
  });

  it('refuses bad credentials with connect_error carrying status 401', async ({ sockets }) => {
    const now = Math.floor(Date.now() / 1000);
    const cases = {
      'no credentials': {},
      'garbage token': { auth: { token: 'not-a-jwt' } },
      'token signed with another secret': { auth: { token: signJwt(sessionClaims('u1'), 'x'.repeat(48)) } },
      'expired token': { auth: { token: signJwt(sessionClaims('u1', { iat: now - 7200, ttl: 3600 })) } },
      'wrong API key': { auth: { ...operatorCaller().auth, apiKey: `wrong-${API_KEY}` } },
      'garbage token in the upgrade header': { extraHeaders: { 'X-Platos-Session-Token': 'not-a-jwt' } },
      'wrong API key in the upgrade headers': { extraHeaders: operatorCaller(newUser('op'), `wrong-${API_KEY}`).headers },
    };
    // Sanity check of signJwt(): a correctly signed hand-made token passes.
    await connectSocket(srv, { auth: { token: signJwt(sessionClaims(newUser('hand')), SERVICE_SECRET) }, track: sockets });

    for (const [label, opts] of Object.entries(cases)) {
      const err = await expectConnectError(srv, { ...opts, track: sockets });
      assert.ok(err.data, `${label}: connect_error must come from a CONNECT_ERROR packet with data, got ${err.message}`);
      assert.equal(err.data.status, 401, `${label}: err.data.status`);
      assert.equal(err.data.code, 'unauthorized', `${label}: err.data.code`);
      assert.match(err.message, /^unauthorized/, `${label}: err.message`);
    }
  });

  // ---------------------------------------------------------------------
  // a turn
  // ---------------------------------------------------------------------

  it('streams tokens that concatenate to the message, done last with usage', async ({ sockets }) => {
    const caller = await sessionCaller(srv);
    const { socket, log } = await connectSocket(srv, { auth: caller.auth, track: sockets });

    const first = await runTurn(log, socket, { message: SHORT, agentId: 'slow-echo' });
    const { meta, done } = assertCompletedTurn(assert, first.events);
    const threadId = meta.thread_id;
    assert.ok(threadId, 'meta.thread_id names the new thread');
    assert.equal(meta.agent_id, 'slow-echo');
    assert.equal(tokenText(first.events), SHORT, 'tokens concatenate to the message exactly');
    assert.equal(first.events.filter((ev) => ev.type === 'token').length, words(SHORT), 'one token per word');
    assert.equal(done.usage.inputTokens, SYSTEM_PROMPT_WORDS + words(SHORT), 'inputTokens: system prompt + message');
    assert.equal(done.usage.outputTokens, words(SHORT), 'outputTokens: words streamed');

    // A second turn on the same thread: new turnId, seqs from 1, the history
    // (both earlier messages) counted in the prompt.
    const again = 'And once more.';
    const second = await runTurn(log, socket, { message: again, threadId });
    const two = assertCompletedTurn(assert, second.events, { threadId });
    assert.notEqual(two.meta.turnId, meta.turnId, 'every turn has its own turnId');
    assert.equal(tokenText(second.events), again);
    assert.equal(
      two.done.usage.inputTokens,
      SYSTEM_PROMPT_WORDS + 2 * words(SHORT) + words(again),
      'inputTokens: system prompt + history + message',
    );

    const messages = await listMessages(srv, caller, threadId);
    assert.deepEqual(
      messages.map((m) => [m.role, m.content]),
      [
        ['user', SHORT],
        ['assistant', SHORT],
        ['user', again],
        ['assistant', again],
      ],
    );
    const persisted = second.events.find((ev) => ev.type === 'message_persisted');
    assert.equal(messages[3].id, persisted.messageId, 'message_persisted.messageId is the stored assistant message');
  });

  it('a message without threadId or agentId starts a thread on the default agent', async ({ sockets }) => {
    const caller = await sessionCaller(srv);
    const { socket, log } = await connectSocket(srv, { auth: caller.auth, track: sockets });
    const { events, meta } = await runTurn(log, socket, { message: 'hello default' });
    assertCompletedTurn(assert, events);
    assert.equal(meta.agent_id, 'default');
    assert.equal(tokenText(events), 'hello default');
    const res = await api(srv, 'GET', `/api/v1/agent/threads/${meta.thread_id}`, { headers: caller.headers });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.agentId, 'default');
    assert.equal(res.json.userId, caller.user);
  });

  it('streams through a socket authenticated with an API key', async ({ sockets }) => {
    const op = operatorCaller();
    const { socket, log } = await connectSocket(srv, { auth: op.auth, track: sockets });
    const { events, meta } = await runTurn(log, socket, { message: 'operator here', agentId: 'slow-echo' });
    assertCompletedTurn(assert, events);
    assert.equal(tokenText(events), 'operator here');
    const res = await api(srv, 'GET', `/api/v1/agent/threads/${meta.thread_id}`, { headers: op.headers });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.userId, op.user, 'the thread belongs to the user named in auth');
  });

  // ---------------------------------------------------------------------
  // resuming
  // ---------------------------------------------------------------------

  it('resume_stream with lastSeq on a new socket continues a turn without gaps or duplicates', async ({ sockets }) => {
    const caller = await sessionCaller(srv);

    // The same message, uninterrupted, on its own thread: the reference.
    const ref = await connectSocket(srv, { auth: caller.auth, track: sockets });
    const reference = await runTurn(ref.log, ref.socket, { message: LONG, agentId: 'slow-echo' });
    assertCompletedTurn(assert, reference.events);
    ref.socket.disconnect();

    // Interrupted: the transport drops after ~5 tokens (no DISCONNECT packet).
    const one = await connectSocket(srv, { auth: caller.auth, track: sockets });
    one.socket.emit('message', { message: LONG, agentId: 'slow-echo' });
    const meta = await one.log.waitFor((ev) => ev.type === 'meta', { what: 'meta' });
    await one.log.waitForTokens(5, { turnId: meta.turnId });
    one.socket.io.engine.close();
    // Stay away for a few tokens, so the resume must replay what was missed
    // (not only join the live stream) and then continue live.
    await sleep(200);
    const seen = one.log.ofTurn(meta.turnId);
    assert.ok(!seen.some((ev) => ev.type === 'done'), 'the turn must still run when the transport drops');
    const lastSeq = seen.at(-1).seq;
    assert.deepEqual(seen.map((ev) => ev.seq), seen.map((_, i) => i + 1), 'first connection: seqs 1..lastSeq');

    const two = await connectSocket(srv, { auth: caller.auth, track: sockets });
    two.socket.emit('resume_stream', { threadId: meta.thread_id, lastSeq });
    await two.log.waitForDone(meta.turnId, { timeout: 15_000 });
    const rest = two.log.ofTurn(meta.turnId);
    assert.equal(rest[0].seq, lastSeq + 1, `resume starts right after lastSeq=${lastSeq}`);

    const combined = [...seen, ...rest];
    assertCompletedTurn(assert, combined, { threadId: meta.thread_id, turnId: meta.turnId });
    assert.equal(tokenText(combined), LONG, 'tokens of both connections concatenate to the message');
    assert.deepEqual(shape(combined), shape(reference.events), 'the resumed turn looks like an uninterrupted one');
    assert.equal(
      two.log.events.filter((ev) => ev.turnId !== meta.turnId).length,
      0,
      'the resuming socket receives nothing but that turn',
    );

    // The finished turn can be replayed whole from the log: same objects.
    const three = await connectSocket(srv, { auth: caller.auth, track: sockets });
    three.socket.emit('resume_stream', { threadId: meta.thread_id, lastSeq: 0 });
    await three.log.waitForDone(meta.turnId);
    assert.deepEqual(three.log.ofTurn(meta.turnId), combined, 'replay with lastSeq 0 returns the logged events');

    const messages = await listMessages(srv, caller, meta.thread_id);
    assert.deepEqual(messages.map((m) => [m.role, m.content]), [['user', LONG], ['assistant', LONG]]);
  });

  it('resume_stream without lastSeq continues after what the client confirmed, with no gap', async ({ sockets }) => {
    // Server-tracked resume: while a turn streams the server pings every
    // second, and each pong confirms what the client had when the ping went
    // out. A bare resume continues after the last confirmed event: nothing is
    // skipped, and what came after the confirmation comes again with the same
    // seq (a client drops those). paced-echo waits 250 ms between tokens, so
    // six tokens take 1.5 s: at least one pong confirmed part of them.
    const caller = await sessionCaller(srv);
    const message = 'one two three four five six seven eight nine ten';
    const one = await connectSocket(srv, { auth: caller.auth, track: sockets });
    let tokens = 0;
    one.socket.on('agent_event', (ev) => {
      if (ev.type === 'token' && ++tokens === 6) one.socket.disconnect();
    });
    one.socket.emit('message', { message, agentId: 'paced-echo' });
    const meta = await one.log.waitFor((ev) => ev.type === 'meta', { what: 'meta' });
    await one.log.waitForTokens(6, { turnId: meta.turnId });
    assert.equal(one.socket.connected, false);
    const seen = one.log.ofTurn(meta.turnId);
    const lastSeq = seen.at(-1).seq;
    assert.equal(seen.at(-1).type, 'token');
    // Away for ~2 tokens: the resume must replay them, then continue live.
    await sleep(600);

    const two = await connectSocket(srv, { auth: caller.auth, track: sockets });
    two.socket.emit('resume_stream', { threadId: meta.thread_id });
    await two.log.waitForDone(meta.turnId, { timeout: 15_000 });
    const rest = two.log.ofTurn(meta.turnId);
    assert.ok(rest[0].seq <= lastSeq + 1, `no gap: resumed at seq ${rest[0].seq}, the client had up to ${lastSeq}`);
    assert.ok(rest[0].seq > 1, 'a pong confirmed part of the turn, so the resume does not start over');
    const combined = [...seen, ...rest.filter((ev) => ev.seq > lastSeq)];
    assertCompletedTurn(assert, combined, { threadId: meta.thread_id, turnId: meta.turnId });
    assert.equal(tokenText(combined), message);
  });

  // ---------------------------------------------------------------------
  // stop, cancel, queue
  // ---------------------------------------------------------------------

  it('stop ends the running turn within 1 s with done cancelled', async ({ sockets }) => {
    const caller = await sessionCaller(srv);
    const { socket, log } = await connectSocket(srv, { auth: caller.auth, track: sockets });
    socket.emit('message', { message: LONG, agentId: 'slow-echo' });
    const meta = await log.waitFor((ev) => ev.type === 'meta', { what: 'meta' });
    await log.waitForTokens(3, { turnId: meta.turnId });
    const started = performance.now();
    socket.emit('stop', { threadId: meta.thread_id });
    const done = await log.waitForDone(meta.turnId, { timeout: 5_000 });
    const elapsed = performance.now() - started;
    assert.ok(elapsed < 1000, `done arrived ${elapsed.toFixed(0)} ms after stop (limit 1000 ms)`);
    assert.equal(done.status, 'cancelled');
    assert.equal(done.stopped, true);
    assertUsage(assert, done.usage, 'done.usage');
    await sleep(300);
    const events = log.ofTurn(meta.turnId);
    assertTurnFrame(assert, events); // also: nothing after done
    const streamed = tokenText(events);
    assert.ok(streamed.length < LONG.length && LONG.startsWith(streamed), `streamed a prefix only: ${JSON.stringify(streamed)}`);

    // The thread is not stuck: the next message runs normally.
    const next = await runTurn(log, socket, { message: 'after the stop', threadId: meta.thread_id });
    assertCompletedTurn(assert, next.events, { threadId: meta.thread_id });
    assert.equal(tokenText(next.events), 'after the stop');
  });

  it('POST /threads/{id}/cancel cancels the running turn, then reports nothing to cancel', async ({ sockets }) => {
    const caller = await sessionCaller(srv);
    const { socket, log } = await connectSocket(srv, { auth: caller.auth, track: sockets });
    socket.emit('message', { message: LONG, agentId: 'slow-echo' });
    const meta = await log.waitFor((ev) => ev.type === 'meta', { what: 'meta' });
    await log.waitForTokens(2, { turnId: meta.turnId });
    const cancelPath = `/api/v1/agent/threads/${meta.thread_id}/cancel`;
    const started = performance.now();
    const first = await api(srv, 'POST', cancelPath, { headers: caller.headers });
    assert.equal(first.status, 200, first.text);
    assert.equal(first.json?.cancelled, true, `cancel of a running turn: ${first.text}`);
    const done = await log.waitForDone(meta.turnId, { timeout: 5_000 });
    assert.ok(performance.now() - started < 1000, 'cancel ends the turn within 1 s');
    assert.equal(done.status, 'cancelled');
    assert.equal(done.stopped, true);

    const second = await api(srv, 'POST', cancelPath, { headers: caller.headers });
    assert.equal(second.status, 200, second.text);
    assert.equal(second.json?.cancelled, false, `cancel with nothing running: ${second.text}`);

    const stranger = await sessionCaller(srv);
    const foreign = await api(srv, 'POST', cancelPath, { headers: stranger.headers });
    assert.equal(foreign.status, 404, `cancel on another user's thread: ${foreign.status} ${foreign.text}`);
    const missing = await api(srv, 'POST', '/api/v1/agent/threads/thr_doesnotexist/cancel', { headers: caller.headers });
    assert.equal(missing.status, 404, `cancel on a missing thread: ${missing.status} ${missing.text}`);
  });

  it('a second message during a turn is queued and runs after the first', async ({ sockets }) => {
    const caller = await sessionCaller(srv);
    const { socket, log } = await connectSocket(srv, { auth: caller.auth, track: sockets });
    const firstMessage = 'first message of ten words to keep it busy';
    const secondMessage = 'second one';
    socket.emit('message', { message: firstMessage, agentId: 'slow-echo' });
    const meta1 = await log.waitFor((ev) => ev.type === 'meta', { what: 'meta of the first turn' });
    const threadId = meta1.thread_id;
    socket.emit('message', { message: secondMessage, threadId });
    assert.ok(!log.ofTurn(meta1.turnId).some((ev) => ev.type === 'done'), 'first turn still running when the second arrives');

    const done1 = await log.waitForDone(meta1.turnId);
    const meta2 = await log.waitFor((ev) => ev.type === 'meta' && ev.turnId !== meta1.turnId, { what: 'meta of the second turn' });
    const done2 = await log.waitForDone(meta2.turnId);
    assert.equal(meta2.thread_id, threadId);
    assert.equal(done1.status, 'completed');
    assert.equal(done2.status, 'completed');

    const turn1 = log.ofTurn(meta1.turnId);
    const turn2 = log.ofTurn(meta2.turnId);
    assertCompletedTurn(assert, turn1, { threadId });
    assertCompletedTurn(assert, turn2, { threadId });
    assert.ok(
      log.events.indexOf(turn1.at(-1)) < log.events.indexOf(turn2[0]),
      `the second turn starts after the first is done: ${log.describe()}`,
    );
    assert.equal(tokenText(turn1), firstMessage);
    assert.equal(tokenText(turn2), secondMessage);
    assert.equal(
      done2.usage.inputTokens,
      SYSTEM_PROMPT_WORDS + 2 * words(firstMessage) + words(secondMessage),
      'the queued turn sees the first turn (message and answer) in its history',
    );
    const messages = await listMessages(srv, caller, threadId);
    assert.deepEqual(
      messages.map((m) => [m.role, m.content]),
      [
        ['user', firstMessage],
        ['assistant', firstMessage],
        ['user', secondMessage],
        ['assistant', secondMessage],
      ],
    );
  });

  // ---------------------------------------------------------------------
  // bad input, tenancy, rooms
  // ---------------------------------------------------------------------

  it('bad input answers error then done and keeps the connection usable', async ({ sockets }) => {
    const caller = await sessionCaller(srv);
    const owner = await sessionCaller(srv);
    const foreignThread = await createThread(srv, owner, 'slow-echo', 'private');
    const { socket, log } = await connectSocket(srv, { auth: caller.auth, track: sockets });
    const socketId = socket.id;

    const cases = [
      ['empty message', 'message', { message: '', agentId: 'slow-echo' }],
      ['message over 32 KiB', 'message', { message: 'x'.repeat(32 * 1024 + 1), agentId: 'slow-echo' }],
      ['unknown thread id', 'message', { message: 'hi', threadId: 'thr_doesnotexist' }],
      ["another user's thread", 'message', { message: 'hi', threadId: foreignThread }],
      ['unknown agent', 'message', { message: 'hi', agentId: 'no-such-agent' }],
      ['message that is a number', 'message', { message: 42, agentId: 'slow-echo' }],
      ['payload that is not an object', 'message', 42],
      ['resume_stream of an unknown thread', 'resume_stream', { threadId: 'thr_doesnotexist', lastSeq: 0 }],
      ["resume_stream of another user's thread", 'resume_stream', { threadId: foreignThread, lastSeq: 0 }],
    ];
    const codes = {};
    for (const [label, event, payload] of cases) {
      const from = log.events.length;
      socket.emit(event, payload);
      const error = await log.waitFor((ev) => ev.type === 'error', { from, what: `error for ${label}` });
      const errorAt = log.events.indexOf(error);
      await log.waitFor((ev, i) => ev.type === 'done' && i > errorAt, { from, what: `done after the error for ${label}` });
      assert.ok(typeof error.code === 'string' && error.code, `${label}: error.code, got ${JSON.stringify(error)}`);
      assert.ok(typeof error.message === 'string' && error.message, `${label}: error.message`);
      const streamed = log.events.slice(from).filter((ev) => ev.type === 'token' || ev.type === 'meta');
      assert.deepEqual(streamed, [], `${label}: no turn may start`);
      assert.ok(socket.connected && socket.id === socketId, `${label}: the connection stays up`);
      codes[label] = error.code;
    }
    assert.equal(codes["another user's thread"], codes['unknown thread id'], "a foreign thread looks like a missing one");
    assert.equal(
      codes["resume_stream of another user's thread"],
      codes['resume_stream of an unknown thread'],
      'a foreign thread looks like a missing one (resume)',
    );

    const ok = await runTurn(log, socket, { message: 'still here', agentId: 'slow-echo' });
    assertCompletedTurn(assert, ok.events);
    assert.equal(tokenText(ok.events), 'still here');
    assert.deepEqual(log.disconnects, []);
    assert.deepEqual(await listMessages(srv, owner, foreignThread), [], "nothing was added to the other user's thread");

    // A message just under the limit is accepted (one long word).
    const big = 'y'.repeat(30 * 1024);
    const bigTurn = await runTurn(log, socket, { message: big, agentId: 'slow-echo' });
    assertCompletedTurn(assert, bigTurn.events);
    assert.equal(tokenText(bigTurn.events), big);
  });

  it("each socket receives only the threads it asked for, never another user's", async ({ sockets }) => {
    const caller = await sessionCaller(srv);
    const intruder = await sessionCaller(srv);
    const threadA = await createThread(srv, caller, 'slow-echo', 'A');
    const threadB = await createThread(srv, caller, 'slow-echo', 'B');
    const a = await connectSocket(srv, { auth: caller.auth, track: sockets });
    const b = await connectSocket(srv, { auth: caller.auth, track: sockets });
    const x = await connectSocket(srv, { auth: intruder.auth, track: sockets });
    x.socket.emit('join_thread', { threadId: threadA });

    // Same user, two sockets, two threads at once: no crosstalk.
    const [turnA, turnB] = await Promise.all([
      runTurn(a.log, a.socket, { message: 'on thread a', threadId: threadA }),
      runTurn(b.log, b.socket, { message: 'on thread b', threadId: threadB }),
    ]);
    assertCompletedTurn(assert, turnA.events, { threadId: threadA });
    assertCompletedTurn(assert, turnB.events, { threadId: threadB });
    await sleep(200);
    assert.deepEqual(a.log.events.filter((ev) => ev.threadId !== threadA), [], 'socket a saw only thread A');
    assert.deepEqual(b.log.events.filter((ev) => ev.threadId !== threadB), [], 'socket b saw only thread B');
    assert.deepEqual(
      x.log.events.filter((ev) => ev.turnId !== undefined || ev.type === 'token'),
      [],
      "another user's socket never sees a turn of the thread, even after join_thread",
    );
  });

  it('join_thread delivers the live turns of a thread, leave_thread stops them', async ({ sockets }) => {
    const caller = await sessionCaller(srv);
    const threadId = await createThread(srv, caller, 'slow-echo', 'watched');
    const sender = await connectSocket(srv, { auth: caller.auth, track: sockets });
    const watcher = await connectSocket(srv, { auth: caller.auth, track: sockets });

    const joined = onceEvent(watcher.socket, 'joined_thread');
    watcher.socket.emit('join_thread', { threadId });
    assert.equal((await joined).threadId, threadId, 'joined_thread names the thread');

    const first = await runTurn(sender.log, sender.socket, { message: 'watched turn', threadId });
    await watcher.log.waitForDone(first.meta.turnId);
    assert.deepEqual(watcher.log.ofTurn(first.meta.turnId), first.events, 'the watcher sees the same events');

    watcher.socket.emit('leave_thread', { threadId });
    await sleep(300); // leave_thread has no acknowledgement
    const second = await runTurn(sender.log, sender.socket, { message: 'unwatched turn', threadId });
    assertCompletedTurn(assert, second.events, { threadId });
    await sleep(300);
    assert.deepEqual(watcher.log.ofTurn(second.meta.turnId), [], 'nothing arrives after leave_thread');
  });

  // ---------------------------------------------------------------------
  // tools and failures
  // ---------------------------------------------------------------------

  it('a tool-calling turn streams tool_call, tool_result, message_boundary in order', async ({ sockets }) => {
    const caller = await sessionCaller(srv);
    const { socket, log } = await connectSocket(srv, { auth: caller.auth, track: sockets });
    const startedAt = Date.now() / 1000;
    const { events, meta } = await runTurn(log, socket, { message: 'what time is it?', agentId: 'tool-steps' });
    const endedAt = Date.now() / 1000;
    const { done } = assertCompletedTurn(assert, events);
    assert.equal(meta.agent_id, 'tool-steps');

    const core = events.filter((ev) => ['token', 'tool_call', 'tool_result', 'message_boundary'].includes(ev.type));
    assert.deepEqual(
      core.map((ev) => ev.type),
      [
        ...Array(words('Let me check the time.')).fill('token'),
        'tool_call',
        'tool_result',
        'message_boundary',
        ...Array(words('Done checking.')).fill('token'),
      ],
    );
    const callAt = core.findIndex((ev) => ev.type === 'tool_call');
    assert.equal(tokenText(core.slice(0, callAt)), 'Let me check the time.');
    assert.equal(tokenText(core.slice(callAt)), 'Done checking.');

    const call = core[callAt];
    const result = core[callAt + 1];
    assert.equal(call.name, 'current_time');
    assert.deepEqual(call.params, {});
    assert.ok(typeof call.callId === 'string' && call.callId, 'tool_call.callId');
    assert.equal(result.name, 'current_time');
    assert.equal(result.callId, call.callId, 'tool_result answers the call');
    assert.ok(!result.isError, 'current_time succeeds');
    assert.equal(typeof result.result.iso, 'string');
    assert.ok(!Number.isNaN(Date.parse(result.result.iso)), `result.iso parses: ${result.result.iso}`);
    assert.equal(typeof result.result.unix, 'number');
    assert.ok(result.result.unix >= Math.floor(startedAt) - 5 && result.result.unix <= endedAt + 5, `unix ${result.result.unix} is now`);
    assert.ok(Math.abs(Date.parse(result.result.iso) / 1000 - result.result.unix) < 2, 'iso and unix agree');
    assert.ok(done.usage.outputTokens > 0);

    const messages = await listMessages(srv, caller, meta.thread_id);
    assert.deepEqual([messages[0].role, messages[0].content], ['user', 'what time is it?']);
    assert.equal(messages.at(-1).role, 'assistant');
    assert.ok(messages.at(-1).content.endsWith('Done checking.'), `final answer: ${JSON.stringify(messages.at(-1).content)}`);
  });

  it('a failing provider ends the turn with error provider_unavailable, then done failed', async ({ sockets }) => {
    const caller = await sessionCaller(srv);
    const { socket, log } = await connectSocket(srv, { auth: caller.auth, track: sockets });
    const { events, done } = await runTurn(log, socket, { message: 'hello?', agentId: 'broken' });
    assertTurnFrame(assert, events);
    const errors = events.filter((ev) => ev.type === 'error');
    assert.equal(errors.length, 1, `exactly one error, got ${JSON.stringify(events)}`);
    assert.equal(errors[0].code, 'provider_unavailable');
    assert.match(errors[0].message, /upstream exploded/);
    assert.ok(events.indexOf(errors[0]) < events.length - 1, 'error comes before done');
    assert.equal(done.status, 'failed');
    assertUsage(assert, done.usage, 'done.usage');
    assert.deepEqual(events.filter((ev) => ev.type === 'token'), []);

    // The socket stays usable.
    const ok = await runTurn(log, socket, { message: 'next', agentId: 'slow-echo' });
    assertCompletedTurn(assert, ok.events);
  });
});

describe('shutdown', () => {
  /** @type {AgentryServer} */
  let srv;
  serverTest(
    () => srv,
    'SIGTERM with a socket connected and a turn streaming exits 0 within 10 s',
    async ({ sockets }) => {
      srv = await new AgentryServer().start();
      const caller = await sessionCaller(srv);
      const { socket, log } = await connectSocket(srv, { auth: caller.auth, track: sockets });
      socket.emit('message', { message: LONG, agentId: 'slow-echo' });
      const meta = await log.waitFor((ev) => ev.type === 'meta', { what: 'meta' });
      await log.waitForTokens(2, { turnId: meta.turnId });
      const disconnected = onceEvent(socket, 'disconnect', { timeout: 15_000 });
      disconnected.catch(() => {}); // awaited below, after the stop's own verdict
      await srv.stopGracefully();
      await disconnected;
      await srv.removeFiles();
    },
  );

  after(() => srv?.kill());
});
