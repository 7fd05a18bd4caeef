// End-to-end tests of the Erdo thread stream (`POST /threads/{id}/message`)
// against the REAL `@erdoai/ui` 0.1.127 reducers: a real `agentry serve`,
// `fetch`, the SSE parsed the way `@erdoai/server`'s ErdoClient yields it
// (every `data: ` line is one JSON event), and every event fed into the
// package's own code the way its `useThread` hook does
// (`docs: /work/shared/reference/erdo-wire.md` §3.4, §4, §2.3):
//
//   (a) the legacy path model (the default): for each event
//       handleSSEEvent(type, {payload, metadata: {path, ...metadata}},
//                      path.split('/').filter(Boolean), threadId, messagesById)
//       (useThread = minified fn `Rs`; handleSSEEvent = `Pn`); the UI shows
//       every content item with user_visibility == "visible";
//   (b) the flat agent model (`useAgentEvents: true`): useThread pushes each
//       event into its zustand store (createAgentStreamStore().pushEvent →
//       handleAgentEvent) and renders agentStateToContents(globalState) once
//       a root step exists.
//
// The real `useThread` hook itself also runs: server-rendered once with
// react-dom/server inside a real ErdoProvider, its `sendMessage` then called
// directly (state setters are no-ops after a server render; the reducer work,
// `onEvent` and `onFinish` are the hook's own code).
//
//   AGENTRY_BIN=target/debug/agentry tests/e2e/run-node.sh --test-name-pattern erdo-ui
//
// Loading: the package's ESM build (dist/index.js) does not load under Node:
// it imports `lodash/isEqual` without an extension (ERR_MODULE_NOT_FOUND,
// "Did you mean to import "lodash/isEqual.js"?"; it is meant for bundlers).
// The CJS build (dist/index.cjs, the `require` export) loads, so it is used.
// `@erdoai/server` is not on npm (404), so ThreadClient below stands in for
// the thread methods of ErdoClient that useThread calls.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { AgentryServer, API_KEY, newUser, sleep, waitFor } from './harness.mjs';

const require = createRequire(import.meta.url);
const ui = require('@erdoai/ui');
const React = require('react');
const { renderToString } = require('react-dom/server');

const UI_PACKAGE = JSON.parse(
  readFileSync(path.join(path.dirname(require.resolve('@erdoai/ui')), '..', 'package.json'), 'utf8'),
);

const ECHO_BOT = 'default.support';
const STEPS_BOT = 'default.tool-steps';
const STEPS_TEXTS = ['Let me check the time.', 'Done checking.'];

/** Events that address one content item (`metadata.path` = `content/<message_content_id>`). */
const CONTENT_EVENTS = ['create message content', 'message content delta', 'message content result'];
/** Events that address the message (`metadata.path` = `message/<message_id>`). */
const MESSAGE_EVENTS = ['message created', 'message finished'];
/** Events of the flat agent model (`useAgentEvents`) only. */
const AGENT_ONLY_EVENTS = ['step_started', 'step_finished'];

// ---------------------------------------------------------------------------
// the client: ErdoClient's thread methods over fetch
// ---------------------------------------------------------------------------

class ErdoHttpError extends Error {
  constructor(method, pathname, status, contentType, text) {
    super(`${method} ${pathname} -> ${status} (${contentType}): ${text.slice(0, 500)}`);
    this.status = status;
    this.contentType = contentType;
    this.text = text;
    try {
      this.json = JSON.parse(text);
    } catch {
      this.json = undefined;
    }
  }
}

/**
 * Parses a thread stream the way ErdoClient yields it: each `data: ` line is
 * one JSON event (`{type, payload, metadata, invocation_id?}`); `event:`
 * lines, comments and blank lines carry nothing. A `data: ` line that is not
 * JSON yields `{raw}` (as the Python SDK does) so the test can name it.
 * `frames` records `{event, data}`: the preceding `event:` value, for a
 * framing check only.
 */
async function* sseEvents(body, frames) {
  const decoder = new TextDecoder();
  let buffer = '';
  let eventName = null;
  const take = (rawLine) => {
    const line = rawLine.endsWith('\r') ? rawLine.slice(0, -1) : rawLine;
    if (line === '') {
      eventName = null;
      return null;
    }
    if (line.startsWith('event:')) {
      eventName = line.slice('event:'.length).trim();
      return null;
    }
    if (!line.startsWith('data: ')) return null;
    const text = line.slice('data: '.length);
    if (!text.trim()) return null;
    let data;
    try {
      data = JSON.parse(text);
    } catch {
      data = { raw: text };
    }
    frames.push({ event: eventName, data });
    return data;
  };
  for await (const chunk of body) {
    buffer += decoder.decode(chunk, { stream: true });
    let nl;
    while ((nl = buffer.indexOf('\n')) !== -1) {
      const event = take(buffer.slice(0, nl));
      buffer = buffer.slice(nl + 1);
      if (event) yield event;
    }
  }
  buffer += decoder.decode();
  if (buffer) {
    const event = take(buffer);
    if (event) yield event;
  }
}

/**
 * The thread methods of `@erdoai/server`'s ErdoClient that `useThread` needs
 * (`createThread`, `sendMessage`) plus `getThreadMessages`, with an API key
 * or a scoped token as `Authorization: Bearer`.
 */
class ThreadClient {
  constructor(baseUrl, credential) {
    this.baseUrl = baseUrl;
    this.credential = credential;
    this.createdThreads = [];
    this.streams = [];
  }

  headers(json) {
    return { Authorization: `Bearer ${this.credential}`, ...(json ? { 'content-type': 'application/json' } : {}) };
  }

  async request(method, pathname, body) {
    const res = await fetch(this.baseUrl + pathname, {
      method,
      headers: this.headers(body !== undefined),
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(15_000),
    });
    const text = await res.text();
    if (!res.ok) throw new ErdoHttpError(method, pathname, res.status, res.headers.get('content-type'), text);
    return { status: res.status, json: JSON.parse(text) };
  }

  async createThread(params = {}) {
    const { status, json } = await this.request('POST', '/threads', params);
    assert.equal(status, 201, `POST /threads status: ${JSON.stringify(json)}`);
    assert.ok(typeof json.id === 'string' && json.id, `POST /threads returns an id: ${JSON.stringify(json)}`);
    this.createdThreads.push(json);
    return json;
  }

  async getThreadMessages(threadId) {
    return (await this.request('GET', `/threads/${encodeURIComponent(threadId)}/messages`)).json;
  }

  /** POST /threads/{id}/message; yields the SSE events; throws ErdoHttpError on a non-2xx answer. */
  async *sendMessage(threadId, params) {
    const pathname = `/threads/${encodeURIComponent(threadId)}/message`;
    const res = await fetch(this.baseUrl + pathname, {
      method: 'POST',
      headers: { ...this.headers(true), Accept: 'text/event-stream' },
      body: JSON.stringify(params),
      signal: AbortSignal.timeout(30_000),
    });
    if (!res.ok) throw new ErdoHttpError('POST', pathname, res.status, res.headers.get('content-type'), await res.text());
    const stream = { status: res.status, contentType: res.headers.get('content-type'), frames: [] };
    this.streams.push(stream);
    yield* sseEvents(res.body, stream.frames);
  }
}

async function scopedToken(server, body) {
  const res = await fetch(`${server.baseUrl}/tokens`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await res.text();
  assert.ok(res.status === 200 || res.status === 201, `POST /tokens -> ${res.status}: ${text}`);
  const json = JSON.parse(text);
  assert.ok(typeof json.token === 'string' && json.token, `POST /tokens returns a token: ${text}`);
  assert.ok(typeof json.tokenId === 'string' && json.tokenId, `POST /tokens returns a tokenId: ${text}`);
  return json.token;
}

// ---------------------------------------------------------------------------
// one turn, fed into the real reducers as it streams
// ---------------------------------------------------------------------------

/** useThread's path split (minified fn `pu`). */
const splitPath = (p) => p.split('/').filter(Boolean);

/**
 * Sends one message and feeds every event, as it arrives, into both reducers
 * of @erdoai/ui exactly the way useThread does: (a) handleSSEEvent with a
 * shared messagesById (useThread's `g`), errors caught per event (useThread
 * logs and drops them; here they are recorded); (b) the agent stream store's
 * pushEvent. Returns everything the assertions need.
 */
async function runTurn(client, threadId, params) {
  const events = [];
  const messagesById = {};
  const legacyErrors = [];
  const textBeforeResult = {};
  const agentStore = ui.createAgentStreamStore();
  for await (const event of client.sendMessage(threadId, params)) {
    events.push(event);
    agentStore.getState().pushEvent(event);
    const type = event.type || '';
    const metadata = event.metadata || {};
    const eventPath = metadata.path || '';
    if (type === 'message content result') {
      const id = metadata.message_content_id;
      const held = Object.values(messagesById).flatMap((m) => m.contents).find((c) => c.id === id);
      textBeforeResult[id] = held?.content;
    }
    try {
      ui.handleSSEEvent(type, { payload: event.payload, metadata: { path: eventPath, ...metadata } }, splitPath(eventPath), threadId, messagesById);
    } catch (err) {
      legacyErrors.push({ index: events.length - 1, type, path: eventPath, error: err.message });
    }
  }
  const stream = client.streams.at(-1);
  const created = events.find((ev) => ev.type === 'message created');
  return {
    threadId,
    events,
    stream,
    messageId: created?.metadata?.message_id,
    invocationId: created?.invocation_id ?? created?.metadata?.invocation_id,
    messagesById,
    legacyErrors,
    textBeforeResult,
    agentState: agentStore.getState().globalState,
  };
}

/** What useThread shows in legacy mode: visible content items of all messages (its `streamingContents`). */
function legacyVisible(messagesById) {
  return Object.values(messagesById)
    .flatMap((m) => m.contents || [])
    .filter((c) => c.user_visibility === 'visible')
    .map((c) => ({
      id: c.id,
      message_id: c.message_id,
      content_type: c.content_type,
      ui_content_type: ui.unwrapNullString(c.ui_content_type),
      content: c.content,
      state: c.state,
      invocation_id: c.created_by_invocation_id,
    }));
}

/** What useThread shows in agent mode: agentStateToContents once a root step exists, else nothing. */
function agentVisible(state) {
  return state.rootStepId ? ui.agentStateToContents(state) : [];
}

function describeEvents(events) {
  return `[${events
    .map((ev) => {
      const m = ev.metadata || {};
      const bits = [ev.type];
      if (m.path !== undefined) bits.push(`@${JSON.stringify(m.path)}`);
      if (typeof ev.payload === 'string') bits.push(JSON.stringify(ev.payload));
      return bits.join(' ');
    })
    .join(', ')}]`;
}

// ---------------------------------------------------------------------------
// the real useThread hook
// ---------------------------------------------------------------------------

/**
 * Renders `useThread(options)` once inside a real ErdoProvider
 * ({baseUrl, client, useAgentEvents}) with react-dom/server, then calls the
 * hook's own `sendMessage(content)`. Returns what `onFinish` and `onEvent`
 * received, and the reducer errors useThread logged
 * (`console.error("Error handling SSE event:", err, type)`).
 */
async function runUseThread(client, { useAgentEvents, content, ...options }) {
  let hook;
  const seen = { finished: undefined, events: [], errors: [] };
  function Probe() {
    hook = ui.useThread({
      ...options,
      onFinish: (contents) => {
        seen.finished = contents;
      },
      onEvent: (event) => seen.events.push(event),
      onError: (err) => seen.errors.push(err),
    });
    return null;
  }
  renderToString(
    React.createElement(ui.ErdoProvider, { config: { baseUrl: client.baseUrl, client, useAgentEvents } }, React.createElement(Probe)),
  );
  assert.equal(typeof hook?.sendMessage, 'function', 'useThread returns sendMessage');
  const logged = [];
  const original = console.error;
  console.error = (...args) => logged.push(args);
  try {
    await hook.sendMessage(content);
  } finally {
    console.error = original;
  }
  seen.reducerErrors = logged
    .filter((args) => args[0] === 'Error handling SSE event:')
    .map((args) => `${args[2]}: ${args[1]?.message ?? args[1]}`);
  seen.otherConsoleErrors = logged.filter((args) => args[0] !== 'Error handling SSE event:').map((args) => args.join(' '));
  return seen;
}

// ---------------------------------------------------------------------------
// assertions
// ---------------------------------------------------------------------------

/** The wire: SSE, every data line JSON, metadata.path and the flat ids on every message/content event. */
function assertThreadStream(turn) {
  const { stream, events, messageId } = turn;
  const seq = describeEvents(events);
  assert.equal(stream.status, 200);
  assert.match(stream.contentType ?? '', /^text\/event-stream/, 'content-type');
  for (const { event, data } of stream.frames) {
    assert.equal(data.raw, undefined, `every data: line is JSON, got ${JSON.stringify(data.raw)}`);
    assert.equal(typeof data.type, 'string', `every event has a type: ${JSON.stringify(data)}`);
    if (event !== null) assert.equal(event, data.type, 'the event: line names the same type as the JSON');
  }
  assert.ok(events.length > 0, 'the stream carries events');
  assert.equal(events[0].type, 'message created', `the stream opens with message created: ${seq}`);
  assert.equal(events[0].payload?.role, 'assistant', 'message created payload.role');
  assert.ok(typeof messageId === 'string' && messageId, `message created carries metadata.message_id: ${JSON.stringify(events[0])}`);
  assert.ok(typeof turn.invocationId === 'string' && turn.invocationId, 'an invocation id');
  assert.ok(events.some((ev) => ev.type === 'message finished'), `message finished is sent: ${seq}`);
  for (const ev of events) {
    const m = ev.metadata ?? {};
    if (MESSAGE_EVENTS.includes(ev.type)) {
      assert.equal(m.path, `message/${messageId}`, `${ev.type} metadata.path`);
      assert.equal(m.message_id, messageId, `${ev.type} metadata.message_id`);
    }
    if (CONTENT_EVENTS.includes(ev.type)) {
      assert.ok(typeof m.message_content_id === 'string' && m.message_content_id, `${ev.type} metadata.message_content_id`);
      assert.equal(m.path, `content/${m.message_content_id}`, `${ev.type} metadata.path`);
      assert.equal(m.message_id, messageId, `${ev.type} metadata.message_id`);
      assert.equal(m.invocation_id, turn.invocationId, `${ev.type} metadata.invocation_id`);
      assert.equal(typeof m.content_type, 'string', `${ev.type} metadata.content_type`);
    }
  }
}

/** (a) The legacy reducer built one completed assistant message whose visible text items are `texts`. */
function assertLegacyAnswer(turn, texts) {
  const seq = describeEvents(turn.events);
  const messages = Object.values(turn.messagesById);
  assert.deepEqual(Object.keys(turn.messagesById), [turn.messageId], `one message, keyed by the path's id: ${seq}`);
  const [message] = messages;
  assert.equal(message.message.role, 'assistant');
  assert.equal(message.message.thread_id, turn.threadId);
  assert.equal(message.state, 'completed', 'message finished completes the message');
  const visible = legacyVisible(turn.messagesById);
  const text = visible.filter((c) => c.content_type === 'text');
  assert.deepEqual(
    text.map((c) => c.content),
    texts,
    `visible assistant text items (legacy reducer errors: ${JSON.stringify(turn.legacyErrors)}; events ${seq})`,
  );
  for (const item of visible) {
    assert.equal(item.message_id, turn.messageId, `content ${item.id} belongs to the message`);
    assert.equal(item.state, 'completed', `content ${item.id} is completed`);
    assert.equal(item.invocation_id, turn.invocationId, `content ${item.id} created_by_invocation_id`);
    assert.equal(
      turn.textBeforeResult[item.id],
      item.content,
      `the deltas of ${item.id} add up to its result (what the UI showed while streaming)`,
    );
  }
  return visible;
}

/** What the UI loads on refresh (normalizeContents of GET /threads/{id}/messages) equals what it streamed. */
async function assertHistoryMatches(client, turn, userText) {
  const { messages } = await client.getThreadMessages(turn.threadId);
  assert.ok(Array.isArray(messages), 'GET /threads/{id}/messages returns {messages: [...]}');
  const at = messages.findIndex((m) => m.id === turn.messageId);
  assert.ok(at > 0, `the history holds the streamed message ${turn.messageId} after a user message; ids ${JSON.stringify(messages.map((m) => `${m.role}:${m.id}`))}`);
  const assistant = messages[at];
  const user = messages[at - 1];
  assert.equal(assistant.role, 'assistant');
  assert.equal(user.role, 'user');
  assert.deepEqual(ui.normalizeContents(user.contents).map((c) => c.content), [userText], 'the user message');
  const pick = (c) => ({ id: c.id, content_type: c.content_type, ui_content_type: c.ui_content_type, content: c.content, invocation_id: c.invocation_id });
  const streamed = legacyVisible(turn.messagesById).map(pick);
  const loaded = ui.normalizeContents(assistant.contents).map(pick);
  assert.deepEqual(loaded, streamed, 'content items after a refresh (history) == content items streamed (ids, types, text, invocation)');
}

/** (b) The flat agent reducer renders `texts`. */
function assertAgentAnswer(turn, texts) {
  const state = turn.agentState;
  const types = [...new Set(turn.events.map((ev) => ev.type))];
  assert.equal(state.messageId, turn.messageId, 'message created anchors the agent state');
  assert.ok(
    state.rootStepId,
    `no root step, so agentStateToContents renders nothing: the stream has no \`step_started\` ` +
      `(payload {step_id, type: "agent", name}); event types: ${JSON.stringify(types)}`,
  );
  const rendered = agentVisible(state);
  assert.deepEqual(
    rendered.filter((c) => c.content_type === 'text').map((c) => c.content),
    texts,
    `agentStateToContents: ${JSON.stringify(rendered)}`,
  );
  assert.equal(state.isStreaming, false, 'streaming has ended');
}

// ---------------------------------------------------------------------------
// tests
// ---------------------------------------------------------------------------

function serverTest(getServer, name, fn, { timeout = 30_000 } = {}) {
  test(name, { timeout }, async (t) => {
    try {
      await fn(t);
    } catch (err) {
      const srv = getServer();
      if (srv?.root) {
        const tail = `\n--- agentry server log (${srv.logPath}) ---\n${srv.logTail(6000)}`;
        if (err instanceof Error && typeof err.stack === 'string') err.stack += tail;
        else t.diagnostic(tail);
      }
      throw err;
    }
  });
}

const tagged = (text) => `${text} ${randomUUID().slice(0, 8)}`;

describe('erdo-ui: @erdoai/ui reducers over the thread stream', () => {
  /** @type {AgentryServer} */
  let srv;
  let apiClient;
  let tokenClient;
  const it = (name, fn, opts) => serverTest(() => srv, name, fn, opts);

  before(async () => {
    srv = await new AgentryServer().start();
    apiClient = new ThreadClient(srv.baseUrl, API_KEY);
    const token = await scopedToken(srv, {
      botKeys: [ECHO_BOT, STEPS_BOT],
      externalUserId: newUser('ext'),
      expiresInSeconds: 600,
    });
    tokenClient = new ThreadClient(srv.baseUrl, token);
  });

  after(async () => {
    if (srv) {
      await srv.stopGracefully();
      await srv.removeFiles();
    }
  });

  it('the package under test is the real @erdoai/ui 0.1.127 (CJS build)', () => {
    assert.equal(UI_PACKAGE.name, '@erdoai/ui');
    assert.equal(UI_PACKAGE.version, '0.1.127');
    for (const name of ['handleSSEEvent', 'createAgentStreamStore', 'agentStateToContents', 'normalizeContents', 'useThread', 'ErdoProvider']) {
      assert.equal(typeof ui[name], 'function', `@erdoai/ui exports ${name}`);
    }
  });

  it('API key: the echo answer becomes one visible assistant text item (legacy reducer)', async () => {
    const thread = await apiClient.createThread({ name: 'erdo-ui api key', botKey: ECHO_BOT });
    assert.equal(thread.name, 'erdo-ui api key');
    assert.equal(typeof thread.createdAt, 'string', 'createdAt');
    const text = tagged('Hello from the erdo UI');
    const turn = await runTurn(apiClient, thread.id, { content: text, botKey: ECHO_BOT });
    assertThreadStream(turn);
    assertLegacyAnswer(turn, [text]);
  });

  it('scoped token: the echo answer becomes one visible assistant text item (legacy reducer)', async () => {
    const thread = await tokenClient.createThread({ name: 'erdo-ui token', botKey: ECHO_BOT });
    const text = tagged('Hello with a scoped token');
    const turn = await runTurn(tokenClient, thread.id, { content: text, botKey: ECHO_BOT });
    assertThreadStream(turn);
    assertLegacyAnswer(turn, [text]);
  });

  it('tool-steps: both text segments around the tool call become visible content, in order (legacy reducer)', async () => {
    const thread = await tokenClient.createThread({ name: 'erdo-ui steps', botKey: STEPS_BOT });
    const turn = await runTurn(tokenClient, thread.id, { content: 'what time is it?', botKey: STEPS_BOT });
    assertThreadStream(turn);
    const visible = assertLegacyAnswer(turn, STEPS_TEXTS);
    assert.notEqual(visible[0].id, visible[1].id, 'two distinct content items');
  });

  it('the legacy reducer accepts every event of the thread stream (nothing logged as "Error handling SSE event")', async (t) => {
    const rejected = [];
    for (const [client, bot, content] of [
      [apiClient, ECHO_BOT, tagged('Reducer check')],
      [tokenClient, STEPS_BOT, 'what time is it?'],
    ]) {
      const thread = await client.createThread({ botKey: bot });
      const turn = await runTurn(client, thread.id, { content, botKey: bot });
      for (const e of turn.legacyErrors) {
        // The flat agent model's own step events are unknown to the legacy
        // reducer whatever their path ("Unable to handle event type
        // step_started"): a stream that serves both models makes useThread log
        // and drop them in legacy mode. That is the expected price of (b).
        if (AGENT_ONLY_EVENTS.includes(e.type) && e.error === `Unable to handle event type ${e.type}`) continue;
        rejected.push({ bot, ...e, event: turn.events[e.index] });
      }
    }
    for (const r of rejected) t.diagnostic(`${r.bot}: event #${r.index} ${JSON.stringify(r.type)} path ${JSON.stringify(r.path)}: ${r.error}`);
    assert.deepEqual(
      rejected.map((r) => `${r.bot}: ${r.type} @${JSON.stringify(r.path)}: ${r.error}`),
      [],
      `events the reducer threw on (useThread logs and drops them): ${JSON.stringify(rejected.map((r) => r.event))}`,
    );
  });

  it('history on refresh: GET /threads/{id}/messages holds the same content items the stream built', async (t) => {
    const cases = [
      ['API key, echo', apiClient, ECHO_BOT, tagged('History check')],
      ['scoped token, echo', tokenClient, ECHO_BOT, tagged('History with a token')],
      ['scoped token, tool-steps', tokenClient, STEPS_BOT, 'what time is it?'],
    ];
    for (const [label, client, bot, content] of cases) {
      await t.test(label, async () => {
        const thread = await client.createThread({ botKey: bot });
        const turn = await runTurn(client, thread.id, { content, botKey: bot });
        assertLegacyAnswer(turn, bot === STEPS_BOT ? STEPS_TEXTS : [content]);
        await assertHistoryMatches(client, turn, content);
      });
    }
  });

  it('the real useThread hook (legacy mode) creates the thread, streams and finishes with the echo answer', async () => {
    const text = tagged('Through useThread');
    const before = tokenClient.createdThreads.length;
    const seen = await runUseThread(tokenClient, { useAgentEvents: false, botKey: ECHO_BOT, content: text });
    assert.deepEqual(seen.errors, [], 'onError');
    assert.equal(tokenClient.createdThreads.length, before + 1, 'useThread created the thread through client.createThread()');
    assert.ok(seen.events.length > 0, 'onEvent saw the events');
    assert.ok(Array.isArray(seen.finished), 'onFinish was called');
    const texts = seen.finished.filter((c) => c.content_type === 'text').map((c) => c.content);
    assert.deepEqual(texts, [text], `onFinish contents: ${JSON.stringify(seen.finished)}; reducer errors: ${JSON.stringify(seen.reducerErrors)}`);
    const created = seen.events.find((ev) => ev.type === 'message created');
    const thread = tokenClient.createdThreads.at(-1);
    const { messages } = await tokenClient.getThreadMessages(thread.id);
    assert.ok(
      messages.some((m) => m.id === created.metadata.message_id && m.role === 'assistant'),
      'the streamed message is in the thread the hook created',
    );
  });

  it('flat agent reducer (useAgentEvents: true): the echo answer and both tool-steps segments render', async (t) => {
    for (const [bot, content, texts] of [
      [ECHO_BOT, tagged('Agent mode'), null],
      [STEPS_BOT, 'what time is it?', STEPS_TEXTS],
    ]) {
      await t.test(bot, async () => {
        const thread = await apiClient.createThread({ botKey: bot });
        const turn = await runTurn(apiClient, thread.id, { content, botKey: bot });
        assertAgentAnswer(turn, texts ?? [content]);
      });
    }
  });

  it('the real useThread hook with useAgentEvents: true finishes with the echo answer', async () => {
    const thread = await apiClient.createThread({ botKey: ECHO_BOT });
    const text = tagged('Hook in agent mode');
    const seen = await runUseThread(apiClient, { useAgentEvents: true, threadId: thread.id, botKey: ECHO_BOT, content: text });
    assert.deepEqual(seen.errors, [], 'onError');
    assert.ok(Array.isArray(seen.finished), 'onFinish was called');
    assert.deepEqual(
      seen.finished.filter((c) => c.content_type === 'text').map((c) => c.content),
      [text],
      `onFinish contents in agent mode: ${JSON.stringify(seen.finished)} (event types ${JSON.stringify([...new Set(seen.events.map((e) => e.type))])})`,
    );
  });

  it('a scoped token without the bot in botKeys is refused with a readable JSON error, and nothing is stored', async () => {
    const token = await scopedToken(srv, { botKeys: [STEPS_BOT], externalUserId: newUser('ext'), expiresInSeconds: 600 });
    const narrow = new ThreadClient(srv.baseUrl, token);

    // Creating a thread for a bot outside the token's scope.
    await assert.rejects(narrow.createThread({ botKey: ECHO_BOT }), (err) => {
      assertReadableRefusal(err, ECHO_BOT);
      return true;
    });

    // Sending to it on a thread the token may use.
    const thread = await narrow.createThread({ botKey: STEPS_BOT });
    await assert.rejects(
      (async () => {
        // eslint-disable-next-line no-unused-vars
        for await (const _ of narrow.sendMessage(thread.id, { content: 'hi', botKey: ECHO_BOT })) {
          assert.fail('no event may stream for a bot outside the token scope');
        }
      })(),
      (err) => {
        assertReadableRefusal(err, ECHO_BOT);
        return true;
      },
    );
    const { messages } = await narrow.getThreadMessages(thread.id);
    assert.deepEqual(messages, [], 'a refused message leaves the thread empty');

    // The same token still works for its own bot.
    const turn = await runTurn(narrow, thread.id, { content: 'what time is it?', botKey: STEPS_BOT });
    assertLegacyAnswer(turn, STEPS_TEXTS);
  });
});

function assertReadableRefusal(err, botKey) {
  assert.ok(err instanceof ErdoHttpError, `an HTTP refusal, got ${err}`);
  assert.ok(err.status >= 400 && err.status < 500, `a 4xx status, got ${err.status}: ${err.text}`);
  assert.match(err.contentType ?? '', /^application\/json/, `a JSON body: ${err.text}`);
  assert.ok(err.json && typeof err.json === 'object', `the body parses as JSON: ${err.text}`);
  assert.equal(typeof err.json.message, 'string', `a message: ${err.text}`);
  assert.ok(err.json.message.includes(botKey), `the message names ${botKey}: ${err.text}`);
}

// ---------------------------------------------------------------------------
// datasets: the UI's own dataset functions (charts, tables, download button)
// ---------------------------------------------------------------------------
//
// @erdoai/ui 0.1.127 does not export its REST dataset functions by name; they
// are module-private in dist/index.cjs and reachable only through exported
// hooks and components (`docs: /work/shared/reference/erdo-wire.md` §2.4, §4):
//
//   query    (minified `Jr`): POST {baseUrl}/datasets/{slug}/query,
//            `Authorization: Bearer <token || authToken>`,
//            body {limit: 1000, query?, resource_key?, filters?} -> {columns, rows},
//            zipped into one object per row; non-2xx throws
//            `Failed to fetch dataset contents: <statusText>`.
//            Called by the exported hooks `useDatasetContents` (minified `Kt`,
//            the fetcher of `DatasetTable`/`TableNode` and `DatasetMetric`) and
//            `useMultipleDatasetRequests` (minified `we`, the fetcher of
//            `DatasetChart`/`ChartNode`: one request per series, with
//            `filters` only when the series has no SQL).
//   details  (minified `Ai`): GET {baseUrl}/datasets/{slug}?ThreadID=<thread>,
//            `Authorization: Bearer <authToken>` else `X-Erdo-Token: <token>`
//            -> {id, name: unwrapNullString(name) || "dataset"}, null on non-2xx.
//   download (minified `Bi`): POST {baseUrl}/datasets/{id}/download, same auth,
//            body {thread_id, query, resource_key} -> {blob, filename from
//            Content-Disposition `filename="…"` else "dataset"}; non-2xx
//            throws `Download failed: <statusText>`; the blob is then saved
//            through a temporary <a download> (minified `Oi`).
//            Both are called only by the exported component `DatasetDownload`
//            (minified `ae`; the `DownloadButtonNode` renderer): details in an
//            effect once it has a slug and a thread id, download on click.
//
// Hooks with effects do not run under react-dom/server, so these tests mount
// the real components with react-dom/client's createRoot inside a real
// `ErdoProvider` ({baseUrl, authToken?, token?}) on a minimal in-memory DOM
// (below: just what react-dom and the UI's download helper touch), with no
// act() and the real scheduler. The UI's requests are recorded by a
// pass-through wrapper of globalThis.fetch.

/** A minimal in-memory DOM: enough for react-dom/client to mount, update and unmount. */
function createFakeDom() {
  const clicks = [];
  const blobs = new Map();
  class FakeNode {
    constructor(doc, nodeType, nodeName) {
      this.ownerDocument = doc;
      this.nodeType = nodeType;
      this.nodeName = nodeName;
      this.childNodes = [];
      this.parentNode = null;
    }
    get firstChild() { return this.childNodes[0] ?? null; }
    get lastChild() { return this.childNodes.at(-1) ?? null; }
    get nextSibling() { return this.parentNode?.childNodes[this.parentNode.childNodes.indexOf(this) + 1] ?? null; }
    get previousSibling() {
      const i = this.parentNode ? this.parentNode.childNodes.indexOf(this) : -1;
      return i > 0 ? this.parentNode.childNodes[i - 1] : null;
    }
    appendChild(child) {
      child.parentNode?.removeChild(child);
      this.childNodes.push(child);
      child.parentNode = this;
      return child;
    }
    insertBefore(child, ref) {
      if (!ref) return this.appendChild(child);
      child.parentNode?.removeChild(child);
      this.childNodes.splice(this.childNodes.indexOf(ref), 0, child);
      child.parentNode = this;
      return child;
    }
    removeChild(child) {
      const i = this.childNodes.indexOf(child);
      if (i >= 0) this.childNodes.splice(i, 1);
      child.parentNode = null;
      return child;
    }
    addEventListener() {}
    removeEventListener() {}
    get textContent() { return this.nodeType === 3 ? this.data : this.childNodes.map((c) => c.textContent).join(''); }
    set textContent(value) {
      for (const c of this.childNodes) c.parentNode = null;
      this.childNodes = [];
      if (value !== '' && value != null) this.appendChild(this.ownerDocument.createTextNode(String(value)));
    }
  }
  class FakeElement extends FakeNode {
    constructor(doc, tag, namespaceURI) {
      super(doc, 1, tag.toUpperCase());
      this.tagName = this.nodeName;
      this.localName = tag;
      this.namespaceURI = namespaceURI;
      this.attributes = {};
      this.style = { setProperty(k, v) { this[k] = v; }, removeProperty(k) { delete this[k]; } };
    }
    setAttribute(k, v) { this.attributes[k] = String(v); }
    setAttributeNS(_ns, k, v) { this.attributes[k] = String(v); }
    getAttribute(k) { return this.attributes[k] ?? null; }
    removeAttribute(k) { delete this.attributes[k]; }
    hasAttribute(k) { return k in this.attributes; }
    /** The UI's save-as helper clicks a temporary `<a href=blob: download=filename>`. */
    click() { clicks.push({ tag: this.localName, href: this.href, download: this.download, inDocument: !!this.parentNode }); }
  }
  class FakeText extends FakeNode {
    constructor(doc, data) { super(doc, 3, '#text'); this.data = data; }
    get nodeValue() { return this.data; }
    set nodeValue(v) { this.data = v; }
  }
  class FakeDocument extends FakeNode {
    constructor() {
      super(null, 9, '#document');
      this.documentElement = this.createElement('html');
      this.appendChild(this.documentElement);
      this.body = this.createElement('body');
      this.documentElement.appendChild(this.body);
      this.activeElement = this.body;
    }
    createElement(tag) { return new FakeElement(this, tag, 'http://www.w3.org/1999/xhtml'); }
    createElementNS(ns, tag) { return new FakeElement(this, tag, ns); }
    createTextNode(text) { return new FakeText(this, text); }
    createComment(text) { const n = new FakeNode(this, 8, '#comment'); n.data = text; return n; }
  }
  const document = new FakeDocument();
  let nextBlob = 0;
  const window = {
    document,
    navigator: { userAgent: 'node' },
    location: { protocol: 'http:', href: 'http://localhost/' },
    HTMLIFrameElement: class HTMLIFrameElement {},
    event: undefined,
    addEventListener() {},
    removeEventListener() {},
    URL: {
      createObjectURL(blob) {
        const url = `blob:erdo-ui-test/${++nextBlob}`;
        blobs.set(url, blob);
        return url;
      },
      revokeObjectURL() {},
    },
  };
  document.defaultView = window;
  return { document, window, clicks, blobs };
}

function installFakeDom() {
  const dom = createFakeDom();
  const saved = {};
  for (const name of ['window', 'document', 'navigator']) {
    saved[name] = Object.getOwnPropertyDescriptor(globalThis, name);
  }
  Object.defineProperty(globalThis, 'window', { value: dom.window, configurable: true, writable: true });
  Object.defineProperty(globalThis, 'document', { value: dom.document, configurable: true, writable: true });
  if (globalThis.navigator === undefined) {
    Object.defineProperty(globalThis, 'navigator', { value: dom.window.navigator, configurable: true, writable: true });
  }
  dom.restore = () => {
    for (const [name, desc] of Object.entries(saved)) {
      if (desc) Object.defineProperty(globalThis, name, desc);
      else delete globalThis[name];
    }
  };
  return dom;
}

/** Records every request the UI makes (method, path, query string, headers, JSON body, status) and passes it on. */
function recordFetch() {
  const original = globalThis.fetch;
  const calls = [];
  globalThis.fetch = async (input, init = {}) => {
    const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
    const headers = Object.fromEntries(Object.entries(init.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
    let body = init.body;
    try {
      body = typeof body === 'string' ? JSON.parse(body) : body;
    } catch {
      /* not JSON: keep the text */
    }
    const call = { method: init.method ?? 'GET', path: url.pathname, search: url.search, headers, body };
    calls.push(call);
    const res = await original(input, init);
    call.status = res.status;
    call.statusText = res.statusText;
    return res;
  };
  return { calls, original, restore: () => { globalThis.fetch = original; } };
}


function findAll(node, tag, out = []) {
  if (node.localName === tag) out.push(node);
  for (const c of node.childNodes) findAll(c, tag, out);
  return out;
}

/** The props React holds for a mounted host node (its real handlers, e.g. onClick). */
function reactProps(node) {
  const key = Object.keys(node).find((k) => k.startsWith('__reactProps$'));
  assert.ok(key, `no React props on <${node.localName}>`);
  return node[key];
}

const SALES_CSV = [
  'product,revenue',
  'widget,1200',
  'gadget,2500',
  'widget,300',
  'gizmo,700',
  'doohickey,50',
  'sprocket,900',
  'gizmo,650',
  '"bolt, large",20',
  '',
].join('\n');
const TOP_PRODUCTS_SQL = 'SELECT product, SUM(revenue) AS revenue FROM data GROUP BY product ORDER BY revenue DESC LIMIT 5';
/** TOP_PRODUCTS_SQL over SALES_CSV, one object per row as the UI zips {columns, rows}. */
const TOP_PRODUCTS = [
  { product: 'gadget', revenue: 2500 },
  { product: 'widget', revenue: 1500 },
  { product: 'gizmo', revenue: 1350 },
  { product: 'sprocket', revenue: 900 },
  { product: 'doohickey', revenue: 50 },
];

async function uploadDataset(srv, body, fetchImpl = fetch) {
  const res = await fetchImpl(`${srv.baseUrl}/datasets`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await res.text();
  assert.equal(res.status, 201, `POST /datasets -> ${res.status}: ${text}`);
  return JSON.parse(text);
}

describe('erdo-ui: @erdoai/ui dataset functions (query, details, download) against /datasets', () => {
  /** @type {AgentryServer} */
  let srv;
  let dom;
  let recorder;
  let createRoot;
  let sales;
  let other;
  let salesToken;
  let otherToken;
  let consoleErrors;
  let originalConsoleError;
  const roots = [];
  const it = (name, fn, opts) => serverTest(() => srv, name, fn, opts);

  before(async () => {
    srv = await new AgentryServer().start();
    dom = installFakeDom();
    // Loaded only now: react-dom/client looks at window/navigator when it loads.
    ({ createRoot } = require('react-dom/client'));
    recorder = recordFetch();
    originalConsoleError = console.error;
    consoleErrors = [];
    console.error = (...args) => consoleErrors.push(args.map((a) => (a instanceof Error ? a.message : String(a))).join(' '));
    sales = await uploadDataset(srv, { slug: 'sales-by-product', name: 'Sales by product', content: SALES_CSV }, recorder.original);
    other = await uploadDataset(srv, { slug: 'other-data', name: 'Other data', content: 'a,b\n1,2\n' }, recorder.original);
    salesToken = await scopedToken(srv, { datasetIds: [sales.id], externalUserId: newUser('ds'), expiresInSeconds: 600 });
    otherToken = await scopedToken(srv, { datasetIds: [other.id], externalUserId: newUser('ds'), expiresInSeconds: 600 });
  });

  after(async () => {
    for (const root of roots) root.unmount();
    await sleep(20);
    if (originalConsoleError) console.error = originalConsoleError;
    recorder?.restore();
    dom?.restore();
    if (srv) {
      await srv.stopGracefully();
      await srv.removeFiles();
    }
  });

  /** Mounts `element` inside a real ErdoProvider with `config` (createRoot on the in-memory DOM). */
  function mount(config, element) {
    const container = dom.document.createElement('div');
    dom.document.body.appendChild(container);
    const root = createRoot(container);
    roots.push(root);
    root.render(React.createElement(ui.ErdoProvider, { config: { baseUrl: srv.baseUrl, ...config } }, element));
    return container;
  }

  /** Runs a dataset hook in a mounted component until it is no longer loading; returns its last result. */
  async function runHook(config, useHook, settled) {
    const renders = [];
    function Probe() {
      renders.push(useHook());
      return null;
    }
    mount(config, React.createElement(Probe));
    return waitFor('the hook to settle', () => {
      const last = renders.at(-1);
      return last && settled(last) ? last : undefined;
    });
  }
  const settledOne = (r) => !r.isLoading && (r.data !== undefined || r.error);

  /** useDatasetContents(slug, invocationId, sql) — the query function (`Jr`) behind DatasetTable. */
  const useContents = (config, slug, sql) => {
    const invocationId = randomUUID(); // the UI caches results by slug|invocationId|query, not by credential
    return runHook(config, () => ui.useDatasetContents(slug, invocationId, sql), settledOne);
  };

  const queryCalls = (slug) => recorder.calls.filter((c) => c.path === `/datasets/${slug}/query`);

  /** Renders the real DatasetTable and reads its header and cell texts once it has loaded. */
  async function renderTable(config, slug, sql) {
    const container = mount(
      config,
      React.createElement(ui.DatasetTable, { title: 'Top products', invocationId: randomUUID(), datasetSlug: slug, sqlQuery: sql }),
    );
    await waitFor('DatasetTable to load', () => findAll(container, 'table').length > 0 || /No data/.test(container.textContent));
    return {
      text: container.textContent,
      header: findAll(container, 'th').map((n) => n.textContent),
      rows: findAll(container, 'tbody').flatMap((b) => findAll(b, 'tr')).map((tr) => findAll(tr, 'td').map((td) => td.textContent)),
    };
  }

  /**
   * Mounts the real DatasetDownload (details on mount, download on click) and
   * waits for the details request to be answered; returns the container and
   * the <a> it rendered, if any.
   */
  async function renderDownload(config, props) {
    const before = recorder.calls.length;
    const container = mount(config, React.createElement(ui.DatasetDownload, props));
    const details = await waitFor('the details request', () =>
      recorder.calls.slice(before).find((c) => c.method === 'GET' && c.path === `/datasets/${props.slug}` && c.status !== undefined),
    );
    if (details.status >= 200 && details.status < 300) {
      await waitFor('the download link', () => findAll(container, 'a')[0]);
    } else {
      await sleep(50);
    }
    return { container, details, link: findAll(container, 'a')[0] };
  }

  /** Clicks the link the way a user does (its own onClick), then reads what the UI saved. */
  async function clickDownload(link) {
    const before = recorder.calls.length;
    const clicksBefore = dom.clicks.length;
    const errorsBefore = consoleErrors.length;
    let prevented = false;
    await reactProps(link).onClick({ preventDefault: () => { prevented = true; } });
    assert.ok(prevented, 'the link handler prevents the default navigation');
    const request = recorder.calls.slice(before).find((c) => c.method === 'POST' && c.path.endsWith('/download'));
    const saved = dom.clicks.slice(clicksBefore).find((c) => c.tag === 'a' && c.href?.startsWith('blob:'));
    assert.ok(
      saved,
      `the UI saved a file (download request ${JSON.stringify(request)}; console.error: ${JSON.stringify(consoleErrors.slice(errorsBefore))})`,
    );
    const blob = dom.blobs.get(saved.href);
    return { request, filename: saved.download, text: await blob.text(), type: blob.type };
  }

  it('upload: POST /datasets with the API key answers 201 {id, slug, name, columns, row_count}', () => {
    assert.equal(typeof sales.id, 'string');
    assert.ok(sales.id);
    assert.equal(sales.slug, 'sales-by-product');
    assert.equal(sales.name, 'Sales by product');
    assert.deepEqual(sales.columns.map((c) => c.name), ['product', 'revenue']);
    assert.equal(sales.row_count, 8);
    for (const name of ['useDatasetContents', 'useMultipleDatasetRequests', 'DatasetTable', 'DatasetDownload', 'ErdoProvider']) {
      assert.equal(typeof ui[name], 'function', `@erdoai/ui exports ${name}`);
    }
  });

  // (1) Calls the exported hook `useDatasetContents` (→ query fn `Jr`) and the
  // exported component `DatasetTable` (same hook), with authToken = API key.
  it('(1) API key as authToken: useDatasetContents runs the SQL and returns the rows zipped; DatasetTable renders them', async () => {
    const before = queryCalls(sales.slug).length;
    const result = await useContents({ authToken: API_KEY }, sales.slug, TOP_PRODUCTS_SQL);
    assert.equal(result.error, null, `useDatasetContents error: ${result.error?.message}`);
    assert.deepEqual(result.data, TOP_PRODUCTS, 'the rows as the UI zips them ({columns, rows} -> objects)');
    const [call] = queryCalls(sales.slug).slice(before);
    assert.equal(call.method, 'POST');
    assert.equal(call.headers.authorization, `Bearer ${API_KEY}`);
    assert.equal(call.headers['content-type'], 'application/json');
    assert.deepEqual(call.body, { limit: 1000, query: TOP_PRODUCTS_SQL }, 'the body the UI sends');
    assert.equal(call.status, 200);

    const table = await renderTable({ authToken: API_KEY }, sales.slug, TOP_PRODUCTS_SQL);
    assert.deepEqual(table.header, ['product', 'revenue'], `DatasetTable header: ${table.text}`);
    assert.deepEqual(
      table.rows,
      TOP_PRODUCTS.map((r) => [r.product, ui.formatValue(r.revenue)]),
      `DatasetTable cells: ${table.text}`,
    );
  });

  // (2) Calls the exported hooks `useDatasetContents` and
  // `useMultipleDatasetRequests` (DatasetChart's fetcher; both → query fn
  // `Jr`), with token = a scoped token naming the dataset (no authToken).
  it('(2) scoped token naming the dataset: useDatasetContents and the chart fetcher useMultipleDatasetRequests (SQL and filters)', async () => {
    const config = { token: salesToken };
    const before = queryCalls(sales.slug).length;
    const result = await useContents(config, sales.slug, TOP_PRODUCTS_SQL);
    assert.equal(result.error, null, `useDatasetContents error: ${result.error?.message}`);
    assert.deepEqual(result.data, TOP_PRODUCTS);
    const [call] = queryCalls(sales.slug).slice(before);
    assert.equal(call.headers.authorization, `Bearer ${salesToken}`, 'the scoped token travels as Authorization: Bearer');
    assert.equal(call.status, 200);

    // Two chart series: one with SQL, one with structured filters (sent only when the series has no SQL).
    const invocationId = randomUUID();
    const requests = [
      { datasetSlug: sales.slug, sqlQuery: TOP_PRODUCTS_SQL },
      { datasetSlug: sales.slug, filters: [{ key: 'product', operator: 'equals', value: ['widget'] }] },
    ];
    const beforeChart = queryCalls(sales.slug).length;
    const results = await runHook(config, () => ui.useMultipleDatasetRequests(requests, invocationId), (rs) => rs.every(settledOne));
    assert.deepEqual(results.map((r) => r.error?.message ?? null), [null, null], 'useMultipleDatasetRequests errors');
    assert.deepEqual(results[0].data, TOP_PRODUCTS, 'series 1 (SQL)');
    assert.deepEqual(
      results[1].data,
      [
        { product: 'widget', revenue: 1200 },
        { product: 'widget', revenue: 300 },
      ],
      'series 2 (filters: product equals widget)',
    );
    const bodies = queryCalls(sales.slug).slice(beforeChart).map((c) => c.body);
    assert.deepEqual(
      bodies.sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))),
      [
        { limit: 1000, filters: requests[1].filters },
        { limit: 1000, query: TOP_PRODUCTS_SQL },
      ],
      'the bodies the chart fetcher sends',
    );
  });

  // (3) Calls `useDatasetContents` (→ `Jr`), `DatasetTable`, and
  // `DatasetDownload` (→ details fn `Ai` with X-Erdo-Token) with a scoped
  // token that names a different dataset.
  it('(3) a scoped token without the dataset: the UI gets its fetch error, the table shows "No data", no download link', async () => {
    const config = { token: otherToken };
    const before = queryCalls(sales.slug).length;
    const result = await useContents(config, sales.slug, TOP_PRODUCTS_SQL);
    assert.equal(result.data, undefined, 'no rows');
    assert.ok(result.error instanceof Error, 'an error');
    assert.equal(result.error.message, 'Failed to fetch dataset contents: Not Found', 'the UI error text (statusText of the 404)');
    const [call] = queryCalls(sales.slug).slice(before);
    assert.equal(call.status, 404);

    const table = await renderTable(config, sales.slug, TOP_PRODUCTS_SQL);
    assert.equal(table.text, 'No data');

    const thread = await new ThreadClient(srv.baseUrl, otherToken).createThread({ name: 'dataset refusal' });
    const { details, link, container } = await renderDownload(config, { slug: sales.slug, threadId: thread.id });
    assert.equal(details.headers['x-erdo-token'], otherToken, 'details send the token as X-Erdo-Token');
    assert.equal(details.headers.authorization, undefined);
    assert.equal(details.status, 404);
    assert.equal(link, undefined, `no download link: ${container.textContent}`);
    assert.equal(container.textContent, '');

    // The same token still reads its own dataset.
    const own = await useContents(config, other.slug, 'SELECT a, b FROM data');
    assert.equal(own.error, null, `own dataset: ${own.error?.message}`);
    assert.deepEqual(own.data, [{ a: 1, b: 2 }]);
  });

  // (4) Calls the exported component `DatasetDownload`: details fn `Ai` on
  // mount, download fn `Bi` (and the save helper `Oi`) on click; once with
  // authToken = API key (Authorization: Bearer), once with only the scoped
  // token (X-Erdo-Token), raw and with a SQL query.
  it('(4) DatasetDownload: details give the id and name; download saves the CSV under the Content-Disposition filename', async () => {
    const apiThread = await new ThreadClient(srv.baseUrl, API_KEY).createThread({ name: 'dataset download' });
    const tokenThread = await new ThreadClient(srv.baseUrl, salesToken).createThread({ name: 'dataset download (token)' });
    const cases = [
      ['API key as authToken', { authToken: API_KEY }, apiThread.id, { authorization: `Bearer ${API_KEY}` }],
      ['scoped token only', { token: salesToken }, tokenThread.id, { 'x-erdo-token': salesToken }],
    ];
    for (const [label, config, threadId, auth] of cases) {
      const authOf = (c) => ({ authorization: c.headers.authorization, 'x-erdo-token': c.headers['x-erdo-token'] });
      const expectedAuth = { authorization: undefined, 'x-erdo-token': undefined, ...auth };

      // Raw file.
      const { details, link, container } = await renderDownload(config, { slug: sales.slug, threadId });
      assert.equal(details.search, `?ThreadID=${threadId}`, `${label}: details query string`);
      assert.deepEqual(authOf(details), expectedAuth, `${label}: details auth headers`);
      assert.equal(details.status, 200, `${label}: details status`);
      assert.ok(link, `${label}: a download link`);
      assert.deepEqual(
        findAll(link, 'span').map((s) => s.textContent),
        [sales.name],
        `${label}: the link shows the dataset name from details: ${container.textContent}`,
      );
      const raw = await clickDownload(link);
      assert.equal(raw.request.path, `/datasets/${sales.id}/download`, `${label}: download by the id details returned`);
      assert.deepEqual(authOf(raw.request), expectedAuth, `${label}: download auth headers`);
      assert.deepEqual(raw.request.body, { thread_id: threadId, query: '', resource_key: '' }, `${label}: download body`);
      assert.equal(raw.request.status, 200);
      assert.equal(raw.filename, `${sales.slug}.csv`, `${label}: filename from Content-Disposition`);
      // The server answers the stored rows re-exported as RFC 4180 CSV (CRLF
      // line ends), not the uploaded bytes (LF here); the UI saves the blob as
      // is, so only the content is compared.
      assert.equal(raw.text.replace(/\r\n/g, '\n'), SALES_CSV, `${label}: the dataset file (line ends aside)`);
      assert.match(raw.type, /^text\/csv/, `${label}: blob type`);

      // With the chart's SQL: the server runs it and answers CSV.
      const q = await renderDownload(config, { slug: sales.slug, threadId, sqlQuery: TOP_PRODUCTS_SQL });
      assert.ok(q.link, `${label}: a download link (query)`);
      const queried = await clickDownload(q.link);
      assert.deepEqual(queried.request.body, { thread_id: threadId, query: TOP_PRODUCTS_SQL, resource_key: '' });
      assert.equal(queried.filename, `${sales.slug}.csv`);
      assert.equal(
        queried.text.trim().split(/\r?\n/).join('\n'),
        ['product,revenue', ...TOP_PRODUCTS.map((r) => `${r.product},${r.revenue}`)].join('\n'),
        `${label}: the query's rows as CSV`,
      );
    }
    assert.deepEqual(
      consoleErrors.filter((e) => /Download failed|Failed to fetch dataset details/.test(e)),
      [],
      'the UI logged no download or details failure',
    );
  });
});
