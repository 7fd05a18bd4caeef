// End-to-end tests of human approvals (HITL) over the realtime lane:
// socket.io-client 4.7.4 (the transport @platosdev/client uses) against a
// real `agentry serve` whose agents call a real local HTTP endpoint.
//
//   AGENTRY_BIN=target/debug/agentry tests/e2e/run-node.sh --test-name-pattern approvals
//
// Agents (approvalAgentFiles in harness.mjs): `refund-approval` calls
// POST {endpoint}/refund-approval/orders/{order_id}/refund after a human's
// approval (timeout 120 s), `refund-timeout` the same with the agent's 1 s
// approval timeout, `ask-approval` the built-in `request_approval`.
//
// A turn that needs approval streams `approval_needed` and `status waiting`,
// then waits (stored, nothing in memory); resolving it (REST, or the socket
// event `approval_response`) continues the same turn: `approval_resolved`,
// `tool_result`, the model's next step, `done`.

import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';

import {
  AgentryServer,
  API_KEY,
  ToolEndpoint,
  api,
  approvalAgentFiles,
  assertCompletedTurn,
  connectSocket,
  listMessages,
  onceEvent,
  sessionCaller,
  tokenText,
  words,
  serverTest,
} from './harness.mjs';

const REFUND_FIRST = 'I will refund order A1.';
const REFUND_SECOND = 'The refund request is settled.';
const REFUND_ARGS = { order_id: 'A1', amount: 30 };
const TIMEOUT_FIRST = 'I will refund order T9.';
const TIMEOUT_SECOND = 'Nobody answered in time.';
const ASK_FIRST = 'I need a human to confirm.';
const ASK_SECOND = 'Thanks for answering.';

const CORE = ['token', 'tool_call', 'approval_needed', 'approval_resolved', 'tool_result', 'message_boundary'];

/** An operator backend: the API key and the scope, no user. */
const OPERATOR_HEADERS = {
  Authorization: `Bearer ${API_KEY}`,
  'X-Platos-Organization-Id': 'default',
  'X-Platos-Project-Id': 'default',
  'X-Platos-Environment-Id': 'default',
};


const resolvePath = (id) => `/api/v1/agent/approvals/${encodeURIComponent(id)}/resolve`;
const approvalPath = (id) => `/api/v1/agent/monitoring/approvals/${encodeURIComponent(id)}`;

function describeEvents(events) {
  return `[${events
    .map((ev) => {
      const bits = [ev.type];
      if (ev.type === 'token') bits.push(JSON.stringify(ev.text));
      if (['status', 'approval_resolved', 'done'].includes(ev.type)) bits.push(ev.status);
      if (ev.seq !== undefined) bits.push(`#${ev.seq}`);
      return bits.join(' ');
    })
    .join(', ')}]`;
}

/** Sends a message and waits until the turn parks; returns {meta, needed}. */
async function startParkedTurn(log, socket, payload) {
  const from = log.events.length;
  socket.emit('message', payload);
  const meta = await log.waitFor((ev) => ev.type === 'meta', { from, what: 'meta' });
  const needed = await log.waitFor((ev) => ev.type === 'approval_needed' && ev.turnId === meta.turnId, {
    from,
    what: 'approval_needed',
  });
  await log.waitFor((ev) => ev.type === 'status' && ev.status === 'waiting' && ev.turnId === meta.turnId, {
    from,
    what: 'status waiting',
  });
  return { meta, needed };
}

/**
 * The whole turn on one connection: completed, its tool step waited for an
 * approval settled as `status`. Returns the key events.
 */
function assertApprovalTurn(events, { first, second, status }) {
  const { meta } = assertCompletedTurn(assert, events);
  const core = events.filter((ev) => CORE.includes(ev.type));
  assert.deepEqual(
    core.map((ev) => ev.type),
    [
      ...Array(words(first)).fill('token'),
      'tool_call',
      'approval_needed',
      'approval_resolved',
      'tool_result',
      'message_boundary',
      ...Array(words(second)).fill('token'),
    ],
    `event order: ${describeEvents(events)}`,
  );
  const at = core.findIndex((ev) => ev.type === 'tool_call');
  assert.equal(tokenText(core.slice(0, at)), first);
  assert.equal(tokenText(core.slice(at)), second);
  const [call, needed, resolved, result] = core.slice(at, at + 4);
  const iCall = events.indexOf(call);
  const iNeeded = events.indexOf(needed);
  const iResolved = events.indexOf(resolved);
  assert.deepEqual([events[iCall - 1].type, events[iCall - 1].status], ['status', 'executing'], describeEvents(events));
  assert.deepEqual(
    [events[iNeeded + 1].type, events[iNeeded + 1].status],
    ['status', 'waiting'],
    `status waiting must follow approval_needed: ${describeEvents(events)}`,
  );
  assert.ok(
    events.slice(iNeeded + 2, iResolved).every((ev) => ev.type === 'status'),
    `nothing but status between the wait and approval_resolved: ${describeEvents(events)}`,
  );
  assert.equal(needed.approvalId, resolved.approvalId);
  assert.equal(needed.callId, call.callId, 'approval_needed.callId is the waiting call');
  assert.equal(result.callId, call.callId, 'tool_result answers the call');
  assert.equal(needed.toolName, call.name);
  assert.equal(result.name, call.name);
  assert.equal(resolved.status, status, `approval_resolved.status: ${JSON.stringify(resolved)}`);
  return { meta, call, needed, resolved, result };
}

function assertRefundNeeded(needed, threadId, agentId = 'refund-approval') {
  assert.ok(typeof needed.approvalId === 'string' && needed.approvalId, 'approvalId');
  assert.equal(needed.toolName, 'refund');
  assert.ok(typeof needed.action === 'string' && needed.action, 'action');
  assert.deepEqual(needed.details, REFUND_ARGS, 'details show the arguments');
  assert.equal(needed.agentId, agentId);
  assert.equal(needed.threadId, threadId);
  const remaining = (Date.parse(needed.timeoutAt) - Date.now()) / 1000;
  assert.ok(remaining > 90 && remaining <= 121, `timeoutAt is the tool's 120 s away, not ${remaining.toFixed(0)} s`);
}

/** Emits approval_response; resolves {ack} or {error} with the answer about that approval. */
function approvalResponse(socket, payload, { timeout = 10_000 } = {}) {
  return new Promise((resolve, reject) => {
    const matches = (body) => body?.approvalId === payload.approvalId;
    const done = (result) => {
      clearTimeout(timer);
      socket.off('approval_ack', onAck);
      socket.off('approval_response_error', onError);
      resolve(result);
    };
    const onAck = (body) => matches(body) && done({ ack: body });
    const onError = (body) => matches(body) && done({ error: body });
    const timer = setTimeout(() => {
      socket.off('approval_ack', onAck);
      socket.off('approval_response_error', onError);
      reject(new Error(`neither approval_ack nor approval_response_error for ${payload.approvalId} within ${timeout} ms`));
    }, timeout);
    socket.on('approval_ack', onAck);
    socket.on('approval_response_error', onError);
    socket.emit('approval_response', payload);
  });
}

describe('approvals', () => {
  /** @type {AgentryServer} */
  let srv;
  /** @type {ToolEndpoint} */
  let endpoint;
  const it = (name, fn, opts) => serverTest(() => srv, name, fn, opts);

  before(async () => {
    endpoint = await new ToolEndpoint().start();
    srv = await new AgentryServer({ agentFiles: approvalAgentFiles(endpoint.baseUrl) }).start();
  });

  beforeEach(() => endpoint?.clear());

  after(async () => {
    if (srv) {
      await srv.stopGracefully();
      await srv.removeFiles();
    }
    await endpoint?.close();
  });

  it('an operator socket for the whole scope hears every approval and can settle it', async ({ sockets }) => {
    const ops = { apiKey: API_KEY, organizationId: 'default', projectId: 'default', environmentId: 'default' };
    const operator = await connectSocket(srv, { auth: ops, track: sockets });
    const caller = await sessionCaller(srv);
    const { socket, log } = await connectSocket(srv, { auth: caller.auth, track: sockets });
    const { meta, needed } = await startParkedTurn(log, socket, { message: 'refund A1', agentId: 'refund-approval' });
    const heard = await operator.log.waitFor((ev) => ev.type === 'approval_needed' && ev.approvalId === needed.approvalId, {
      what: "the user's approval_needed on the operator's socket",
    });
    assert.equal(heard.threadId, meta.thread_id);
    assert.equal(heard.turnId, meta.turnId);
    assert.ok(
      operator.log.events.every((ev) => ev.type === 'approval_needed' || ev.type === 'approval_resolved'),
      `the operator feed carries approvals only: ${describeEvents(operator.log.events)}`,
    );
    const ok = await approvalResponse(operator.socket, { approvalId: needed.approvalId, approved: true, comment: 'ops ok' });
    assert.equal(ok.ack?.status, 'approved', JSON.stringify(ok));
    const resolved = await operator.log.waitFor(
      (ev) => ev.type === 'approval_resolved' && ev.approvalId === needed.approvalId,
      { what: 'approval_resolved on the operator socket' },
    );
    assert.equal(resolved.respondedBy, 'operator');
    await log.waitForDone(meta.turnId, { timeout: 15_000 });
    assertApprovalTurn(log.ofTurn(meta.turnId), { first: REFUND_FIRST, second: REFUND_SECOND, status: 'approved' });
  });

  it('approve over REST: the same turn continues with approval_resolved, tool_result, tokens, done', async ({ sockets }) => {
    const caller = await sessionCaller(srv);
    const { socket, log } = await connectSocket(srv, { auth: caller.auth, track: sockets });
    const { meta, needed } = await startParkedTurn(log, socket, { message: 'refund A1', agentId: 'refund-approval' });
    assertRefundNeeded(needed, meta.thread_id);
    assert.deepEqual(endpoint.received(), [], 'the tool must not run before the approval');

    const pending = await api(srv, 'GET', approvalPath(needed.approvalId), { headers: caller.headers });
    assert.equal(pending.status, 200, pending.text);
    assert.equal(pending.json.status, 'pending');
    assert.equal(pending.json.id, needed.approvalId);
    assert.deepEqual(pending.json.args, REFUND_ARGS);

    const res = await api(srv, 'POST', resolvePath(needed.approvalId), {
      headers: caller.headers,
      body: { response: 'approve', reason: 'looks right' },
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.resolved, true);
    assert.equal(res.json.approved, true);
    assert.equal(res.json.status, 'approved');

    await log.waitForDone(meta.turnId, { timeout: 15_000 });
    const { resolved, result, call } = assertApprovalTurn(log.ofTurn(meta.turnId), {
      first: REFUND_FIRST,
      second: REFUND_SECOND,
      status: 'approved',
    });
    assert.deepEqual(call.params, REFUND_ARGS);
    assert.equal(resolved.respondedBy, caller.user);
    assert.equal(resolved.comment, 'looks right');
    assert.ok(!result.isError, `tool_result: ${JSON.stringify(result)}`);
    const calls = endpoint.received('/refund-approval/');
    assert.equal(calls.length, 1, `the endpoint is called once: ${JSON.stringify(calls)}`);
    assert.equal(calls[0].method, 'POST');
    assert.equal(calls[0].path, '/refund-approval/orders/A1/refund');
    assert.deepEqual(calls[0].body, { amount: 30 });
    assert.deepEqual(result.result, {
      ok: true,
      method: 'POST',
      path: '/refund-approval/orders/A1/refund',
      query: {},
      body: { amount: 30 },
    });

    const messages = await listMessages(srv, caller, meta.thread_id);
    assert.deepEqual(messages.map((m) => m.role), ['user', 'assistant']);
    assert.ok(messages[1].content.endsWith(REFUND_SECOND), JSON.stringify(messages[1].content));
  });

  it('approval_response with editedArgs approves on the socket, answers approval_ack, the endpoint gets the edit', async ({ sockets }) => {
    const caller = await sessionCaller(srv);
    const { socket, log } = await connectSocket(srv, { auth: caller.auth, track: sockets });
    const { meta, needed } = await startParkedTurn(log, socket, { message: 'refund it', agentId: 'refund-approval' });
    const edited = { order_id: 'B-7/x y', amount: 12.5 };

    const answer = await approvalResponse(socket, {
      approvalId: needed.approvalId,
      approved: true,
      comment: 'partial refund',
      editedArgs: edited,
    });
    assert.ok(answer.ack, `approval_response_error: ${JSON.stringify(answer.error)}`);
    assert.deepEqual(answer.ack, { approvalId: needed.approvalId, received: true, status: 'approved' });

    await log.waitForDone(meta.turnId, { timeout: 15_000 });
    const { call, resolved, result } = assertApprovalTurn(log.ofTurn(meta.turnId), {
      first: REFUND_FIRST,
      second: REFUND_SECOND,
      status: 'approved',
    });
    assert.deepEqual(call.params, REFUND_ARGS, 'tool_call shows what the model asked');
    assert.equal(resolved.respondedBy, caller.user);
    assert.equal(resolved.comment, 'partial refund');
    assert.ok(!result.isError, JSON.stringify(result));
    const calls = endpoint.received('/refund-approval/');
    assert.equal(calls.length, 1, JSON.stringify(calls));
    assert.equal(calls[0].path, '/refund-approval/orders/B-7%2Fx%20y/refund');
    assert.deepEqual(calls[0].body, { amount: 12.5 });

    const got = await api(srv, 'GET', approvalPath(needed.approvalId), { headers: caller.headers });
    assert.equal(got.status, 200, got.text);
    assert.equal(got.json.status, 'approved');
    assert.deepEqual(got.json.editedArgs, edited);
    assert.deepEqual(got.json.resolution, { response: 'approve', reason: 'partial refund', resolvedByUserId: caller.user });
  });

  it('approval_response rejects: the model is told why, the endpoint is never called', async ({ sockets }) => {
    const caller = await sessionCaller(srv);
    const { socket, log } = await connectSocket(srv, { auth: caller.auth, track: sockets });
    const { meta, needed } = await startParkedTurn(log, socket, { message: 'refund A1 again', agentId: 'refund-approval' });
    const reason = 'order A1 was already refunded';

    const answer = await approvalResponse(socket, { approvalId: needed.approvalId, approved: false, comment: reason });
    assert.deepEqual(answer.ack, { approvalId: needed.approvalId, received: true, status: 'rejected' }, JSON.stringify(answer));

    await log.waitForDone(meta.turnId, { timeout: 15_000 });
    const { resolved, result } = assertApprovalTurn(log.ofTurn(meta.turnId), {
      first: REFUND_FIRST,
      second: REFUND_SECOND,
      status: 'rejected',
    });
    assert.equal(resolved.comment, reason);
    assert.equal(result.isError, true, JSON.stringify(result));
    assert.ok(JSON.stringify(result.result).includes(reason), `the model is told why: ${JSON.stringify(result)}`);
    assert.deepEqual(endpoint.received(), [], 'a rejected call never reaches the endpoint');
  });

  it('approval_response_error for an unknown id, another user, a bad body, and a settled approval', async ({ sockets }) => {
    const caller = await sessionCaller(srv);
    const stranger = await sessionCaller(srv);
    const { socket, log } = await connectSocket(srv, { auth: caller.auth, track: sockets });
    const other = await connectSocket(srv, { auth: stranger.auth, track: sockets });
    const { meta, needed } = await startParkedTurn(log, socket, { message: 'refund A1', agentId: 'refund-approval' });

    const unknown = await approvalResponse(socket, { approvalId: 'apr_doesnotexist', approved: true });
    assert.ok(unknown.error, `unknown id: ${JSON.stringify(unknown)}`);
    assert.equal(unknown.error.approvalId, 'apr_doesnotexist');
    assert.ok(typeof unknown.error.error === 'string' && unknown.error.error, JSON.stringify(unknown.error));

    const foreign = await approvalResponse(other.socket, { approvalId: needed.approvalId, approved: true });
    assert.ok(foreign.error, `another user's approval_response must fail: ${JSON.stringify(foreign)}`);
    assert.equal(foreign.error.approvalId, needed.approvalId);

    const noDecision = await approvalResponse(socket, { approvalId: needed.approvalId, comment: 'undecided' });
    assert.ok(noDecision.error, `a body without a decision must fail: ${JSON.stringify(noDecision)}`);

    const still = await api(srv, 'GET', approvalPath(needed.approvalId), { headers: caller.headers });
    assert.equal(still.json?.status, 'pending', `refused attempts change nothing: ${still.text}`);
    assert.equal(
      other.log.events.filter((ev) => ev.turnId === meta.turnId).length,
      0,
      "another user's socket sees nothing of the turn",
    );

    const first = await approvalResponse(socket, { approvalId: needed.approvalId, approved: true });
    assert.ok(first.ack, JSON.stringify(first));
    const again = await approvalResponse(socket, { approvalId: needed.approvalId, approved: false });
    assert.ok(again.error, `a second answer must fail: ${JSON.stringify(again)}`);
    assert.match(again.error.error, /already/i, `why: ${again.error.error}`);

    await log.waitForDone(meta.turnId, { timeout: 15_000 });
    assertApprovalTurn(log.ofTurn(meta.turnId), { first: REFUND_FIRST, second: REFUND_SECOND, status: 'approved' });
    assert.equal(endpoint.received('/refund-approval/').length, 1);
    const rest = await api(srv, 'POST', resolvePath(needed.approvalId), { headers: OPERATOR_HEADERS, body: { approved: false } });
    assert.equal(rest.status, 409, `REST resolve of a settled approval: ${rest.status} ${rest.text}`);
  });

  it('an unanswered approval times out and the turn goes on', async ({ sockets }) => {
    const caller = await sessionCaller(srv);
    const { socket, log } = await connectSocket(srv, { auth: caller.auth, track: sockets });
    const { meta, needed } = await startParkedTurn(log, socket, { message: 'refund T9', agentId: 'refund-timeout' });
    const parkedAt = performance.now();
    await log.waitForDone(meta.turnId, { timeout: 15_000 });
    const waited = (performance.now() - parkedAt) / 1000;
    const { resolved, result } = assertApprovalTurn(log.ofTurn(meta.turnId), {
      first: TIMEOUT_FIRST,
      second: TIMEOUT_SECOND,
      status: 'timed_out',
    });
    assert.ok(waited < 12, `the turn went on ${waited.toFixed(1)} s after it parked (timeout 1 s)`);
    assert.equal(needed.agentId, 'refund-timeout');
    assert.notEqual(resolved.respondedBy, caller.user);
    assert.equal(result.isError, true, JSON.stringify(result));
    assert.match(JSON.stringify(result.result), /time/i, `the model is told it timed out: ${JSON.stringify(result)}`);
    assert.deepEqual(endpoint.received(), [], 'a timed-out call never reaches the endpoint');

    const late = await approvalResponse(socket, { approvalId: needed.approvalId, approved: true });
    assert.ok(late.error, `answering a timed-out approval must fail: ${JSON.stringify(late)}`);
    const got = await api(srv, 'GET', approvalPath(needed.approvalId), { headers: caller.headers });
    assert.equal(got.json?.status, 'timed_out', got.text);
  });

  it('stop while the turn waits settles the approval as cancelled and ends the turn', async ({ sockets }) => {
    const caller = await sessionCaller(srv);
    const { socket, log } = await connectSocket(srv, { auth: caller.auth, track: sockets });
    const { meta, needed } = await startParkedTurn(log, socket, { message: 'refund A1, or not', agentId: 'refund-approval' });
    socket.emit('stop', { threadId: meta.thread_id });
    const done = await log.waitForDone(meta.turnId, { timeout: 5_000 });
    assert.equal(done.status, 'cancelled');
    assert.equal(done.stopped, true);
    const events = log.ofTurn(meta.turnId);
    assert.deepEqual(events.map((ev) => ev.seq), events.map((_, i) => i + 1), describeEvents(events));
    const resolved = events.filter((ev) => ev.type === 'approval_resolved');
    assert.equal(resolved.length, 1, describeEvents(events));
    assert.equal(resolved[0].status, 'cancelled');
    assert.equal(resolved[0].approvalId, needed.approvalId);
    assert.ok(!events.some((ev) => ev.type === 'tool_result'), describeEvents(events));
    assert.deepEqual(endpoint.received(), [], 'a cancelled call never reaches the endpoint');
    const late = await approvalResponse(socket, { approvalId: needed.approvalId, approved: true });
    assert.ok(late.error, `answering a cancelled approval must fail: ${JSON.stringify(late)}`);

    // The thread is not stuck: the next message runs (and asks again).
    const next = await startParkedTurn(log, socket, { message: 'try again', threadId: meta.thread_id });
    const ok = await approvalResponse(socket, { approvalId: next.needed.approvalId, approved: true });
    assert.ok(ok.ack, JSON.stringify(ok));
    await log.waitForDone(next.meta.turnId, { timeout: 15_000 });
    assertApprovalTurn(log.ofTurn(next.meta.turnId), { first: REFUND_FIRST, second: REFUND_SECOND, status: 'approved' });
  });

  // A `stop` that arrives after `status waiting` but before the runner has let
  // go of the turn finds it still running; it must not be lost.
  test(
    'stop right after status waiting is not lost',
    { timeout: 60_000 },
    async () => {
      const lost = [];
      const sockets = new Set();
      try {
        for (let i = 0; i < 5; i++) {
          const caller = await sessionCaller(srv);
          const { socket, log } = await connectSocket(srv, { auth: caller.auth, track: sockets });
          const { meta, needed } = await startParkedTurn(log, socket, { message: 'stop me', agentId: 'refund-approval' });
          socket.emit('stop', { threadId: meta.thread_id });
          try {
            await log.waitForDone(meta.turnId, { timeout: 2_000 });
          } catch {
            lost.push(needed.approvalId);
            // Clean up: a second cancel ends it.
            await api(srv, 'POST', `/api/v1/agent/threads/${meta.thread_id}/cancel`, { headers: caller.headers });
          }
        }
      } finally {
        for (const socket of sockets) socket.disconnect();
      }
      assert.deepEqual(lost, [], `stops lost (turn kept waiting, approval pending) in ${lost.length} of 5 tries`);
    },
  );

  it('request_approval: the answer given with approval_response is the tool result', async ({ sockets }) => {
    const caller = await sessionCaller(srv);
    const { socket, log } = await connectSocket(srv, { auth: caller.auth, track: sockets });

    // Approved, with a comment.
    const one = await startParkedTurn(log, socket, { message: 'clean up staging', agentId: 'ask-approval' });
    assert.equal(one.needed.toolName, 'request_approval');
    assert.equal(one.needed.action, 'Delete the staging database');
    assert.deepEqual(one.needed.details, { database: 'staging', rows: 1200 });
    const yes = await approvalResponse(socket, { approvalId: one.needed.approvalId, approved: true, comment: 'go ahead' });
    assert.equal(yes.ack?.status, 'approved', JSON.stringify(yes));
    await log.waitForDone(one.meta.turnId, { timeout: 15_000 });
    const approved = assertApprovalTurn(log.ofTurn(one.meta.turnId), { first: ASK_FIRST, second: ASK_SECOND, status: 'approved' });
    assert.ok(!approved.result.isError, JSON.stringify(approved.result));
    assert.deepEqual(approved.result.result, { approved: true, comment: 'go ahead', respondedBy: caller.user });

    // Rejected, on the next turn of the same thread: still an answer, not an error.
    const threadId = one.meta.thread_id;
    const two = await startParkedTurn(log, socket, { message: 'and production?', threadId });
    const no = await approvalResponse(socket, { approvalId: two.needed.approvalId, approved: false, comment: 'never' });
    assert.equal(no.ack?.status, 'rejected', JSON.stringify(no));
    await log.waitForDone(two.meta.turnId, { timeout: 15_000 });
    const rejected = assertApprovalTurn(log.ofTurn(two.meta.turnId), { first: ASK_FIRST, second: ASK_SECOND, status: 'rejected' });
    assert.ok(!rejected.result.isError, `a refusal answers request_approval, it is no error: ${JSON.stringify(rejected.result)}`);
    assert.equal(rejected.result.result.approved, false, JSON.stringify(rejected.result));
    assert.equal(rejected.result.result.comment, 'never', JSON.stringify(rejected.result));
    assert.equal(rejected.result.result.respondedBy, caller.user, JSON.stringify(rejected.result));

    const listed = await api(srv, 'GET', `/api/v1/agent/monitoring/approvals?threadId=${threadId}`, { headers: caller.headers });
    assert.equal(listed.status, 200, listed.text);
    assert.deepEqual(
      listed.json.approvals.map((a) => [a.id, a.status]),
      [
        [two.needed.approvalId, 'rejected'],
        [one.needed.approvalId, 'approved'],
      ],
      'newest first',
    );
    assert.equal(listed.json.pendingCount, 0);
  });
});

describe('approvals across a restart', () => {
  /** @type {AgentryServer} */
  let srv;
  /** @type {ToolEndpoint} */
  let endpoint;

  before(async () => {
    endpoint = await new ToolEndpoint().start();
  });

  after(async () => {
    srv?.kill();
    await srv?.removeFiles();
    await endpoint?.close();
  });

  serverTest(
    () => srv,
    'a waiting turn survives SIGTERM and a new process: resume_stream, approval_response, the turn finishes',
    async ({ t, sockets }) => {
      srv = await new AgentryServer({ agentFiles: approvalAgentFiles(endpoint.baseUrl) }).start();
      const caller = await sessionCaller(srv);
      const one = await connectSocket(srv, { auth: caller.auth, track: sockets });
      const { meta, needed } = await startParkedTurn(one.log, one.socket, { message: 'refund A1', agentId: 'refund-approval' });
      const threadId = meta.thread_id;
      const dropped = onceEvent(one.socket, 'disconnect', { timeout: 15_000 });
      dropped.catch(() => {});

      await srv.restart(); // same port, same data dir
      await dropped;
      const before = one.log.ofTurn(meta.turnId);
      assert.equal(before.at(-1).status, 'waiting', `the first connection ends in the wait: ${describeEvents(before)}`);
      const lastSeq = before.at(-1).seq;

      // Like the SDKs after a reconnect: resume_stream {threadId}, no lastSeq.
      const two = await connectSocket(srv, { auth: caller.auth, track: sockets });
      two.socket.emit('resume_stream', { threadId });
      // With the lastSeq extension.
      const three = await connectSocket(srv, { auth: caller.auth, track: sockets });
      three.socket.emit('resume_stream', { threadId, lastSeq });

      const answer = await approvalResponse(two.socket, { approvalId: needed.approvalId, approved: true, comment: 'after restart' });
      assert.deepEqual(answer.ack, { approvalId: needed.approvalId, received: true, status: 'approved' }, JSON.stringify(answer));
      await two.log.waitForDone(meta.turnId, { timeout: 15_000 });
      await three.log.waitForDone(meta.turnId, { timeout: 15_000 });

      // The lastSeq resume continues right after what the first socket had.
      const rest = three.log.ofTurn(meta.turnId);
      assert.equal(rest[0].seq, lastSeq + 1, `resume with lastSeq=${lastSeq}: ${describeEvents(rest)}`);
      const combined = [...before, ...rest];
      const { resolved, result } = assertApprovalTurn(combined, { first: REFUND_FIRST, second: REFUND_SECOND, status: 'approved' });
      assert.equal(resolved.respondedBy, caller.user);
      assert.equal(resolved.comment, 'after restart');
      assert.ok(!result.isError, JSON.stringify(result));
      assert.equal(endpoint.received('/refund-approval/').length, 1, 'the tool ran exactly once');

      // Without lastSeq: the end of the turn, no gap, nothing twice.
      const resumed = two.log.ofTurn(meta.turnId);
      assert.equal(resumed.at(-1).type, 'done');
      assert.equal(resumed.at(-1).status, 'completed');
      const bySeq = new Map();
      for (const ev of [...before, ...resumed]) {
        if (bySeq.has(ev.seq)) assert.deepEqual(ev, bySeq.get(ev.seq), `seq ${ev.seq} delivered twice with different content`);
        else bySeq.set(ev.seq, ev);
      }
      const seqs = [...bySeq.keys()].sort((a, b) => a - b);
      assert.deepEqual(seqs, seqs.map((_, i) => i + 1), `no gap over both connections: ${seqs}`);
      assert.deepEqual([...bySeq.values()].sort((a, b) => a.seq - b.seq), combined, 'the same turn on both resumes');
      // The server saved where this client's stream stood at the graceful stop: nothing twice.
      const replayed = resumed.filter((ev) => ev.seq <= lastSeq);
      assert.deepEqual(replayed, [], `resume_stream without lastSeq after a restart replayed: ${describeEvents(replayed)}`);

      const messages = await listMessages(srv, caller, threadId);
      assert.deepEqual(messages.map((m) => m.role), ['user', 'assistant']);
      await srv.stopGracefully();
    },
  );
});
