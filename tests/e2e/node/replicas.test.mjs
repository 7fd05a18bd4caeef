// Real `agentry serve` processes as replicas of one installation on one fresh
// Postgres database: five starting at the same moment all come up; a socket on
// one follows a turn running on another; `kill -9` of the replica running
// a turn hands it to another, which resumes it from its last completed step
// (the tool call it made is not made again) within the lease plus a few
// seconds; and `kill -9` of the replica running a background run's attempt
// leaves that attempt CRASHED and the run retried and completed on another,
// the endpoint called once per attempt.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  AgentryServer,
  PgDatabase,
  ToolEndpoint,
  api,
  connectSocket,
  createThread,
  operatorCaller,
  sessionCaller,
  sleep,
  tokenText,
} from './harness.mjs';

const LEASE_SECS = 2;
const answer = Array.from({ length: 40 }, (_, i) => `a${i + 1}`).join(' ');

function agents(toolBase) {
  return {
    'crashable.toml': `\
id = "crashable"
name = "Crashable"
model = "scripted:steps"
system_prompt = "Steps."

[[http_tools]]
name = "hit"
description = "Counts a hit"
method = "GET"
url = "${toolBase}/hit"

[script]
token_delay_ms = 100

[[script.steps]]
text = "Checking."
tool_calls = [{ name = "hit", arguments = {} }]

[[script.steps]]
text = "${answer}"
`,
  };
}

function tasks(toolBase) {
  return {
    'slow-call.toml': `\
id = "slow-call"
kind = "http"
url = "${toolBase}/sleep/3000/job"
max_attempts = 3
[retry]
min_delay_ms = 10
max_delay_ms = 10
`,
  };
}

function replica(db, id, agentFiles, taskFiles) {
  return new AgentryServer({
    databaseUrl: db.url,
    agentFiles,
    taskFiles,
    env: { AGENTRY_TURN_LEASE_SECS: String(LEASE_SECS), AGENTRY_REPLICA_ID: id },
  });
}

describe('replicas on one Postgres', () => {
  /** @type {PgDatabase} */
  let db;
  /** @type {ToolEndpoint} */
  let tool;
  /** @type {AgentryServer[]} */
  let replicas = [];
  const sockets = new Set();

  before(async () => {
    db = await new PgDatabase().create();
    tool = await new ToolEndpoint().start();
  });

  after(async () => {
    for (const socket of sockets) socket.disconnect();
    for (const srv of replicas) {
      srv.kill();
      await srv.exited?.catch(() => {});
      await srv.removeFiles();
    }
    await tool?.close();
    await db?.drop();
  });

  test('five replicas started at the same moment on a fresh database all come up', { timeout: 60_000 }, async () => {
    replicas = Array.from({ length: 5 }, (_, i) => replica(db, `rep-${i}`, agents(tool.baseUrl), tasks(tool.baseUrl)));
    await Promise.all(replicas.map((srv) => srv.start()));
    const installs = await db.query("SELECT COUNT(*) FROM meta WHERE key = 'bootstrapped_at'");
    assert.equal(installs, '1', 'one installation');
    const versions = await db.query("SELECT COUNT(*) FROM agent_versions WHERE agent_id = 'crashable'");
    assert.equal(versions, '1', 'the same agent file applied by five replicas is one version');
  });

  test('a socket on one replica follows a turn running on another', { timeout: 60_000 }, async () => {
    const [a, b] = replicas;
    const caller = await sessionCaller(a);
    const threadId = await createThread(a, caller, 'support');
    const watcher = await connectSocket(b, { auth: caller.auth, track: sockets });
    watcher.socket.emit('join_thread', { threadId });
    await new Promise((resolve) => watcher.socket.once('joined_thread', resolve));
    const sender = await connectSocket(a, { auth: caller.auth, track: sockets });
    sender.socket.emit('message', { message: 'hello from the other replica', threadId });
    const meta = await sender.log.waitFor((ev) => ev.type === 'meta', { what: 'meta' });
    await watcher.log.waitForDone(meta.turnId, { timeout: 15_000 });
    assert.equal(tokenText(watcher.log.ofTurn(meta.turnId)), 'hello from the other replica');
  });

  test('kill -9 of the replica running a turn: another resumes it, the tool call is not repeated', { timeout: 60_000 }, async () => {
    const [a] = replicas;
    const caller = await sessionCaller(a);
    const threadId = await createThread(a, caller, 'crashable');
    const one = await connectSocket(a, { auth: caller.auth, track: sockets });
    one.socket.emit('message', { message: 'go', threadId });
    const meta = await one.log.waitFor((ev) => ev.type === 'meta', { what: 'meta' });
    await one.log.waitFor((ev) => ev.type === 'tool_result', { what: 'the tool result' });
    await one.log.waitForTokens(4, { turnId: meta.turnId });
    const owner = await db.query(`SELECT lease_owner FROM turns WHERE id = '${meta.turnId}'`);
    const victim = replicas.find((_, i) => `rep-${i}` === owner);
    assert.ok(victim, `the turn runs on ${owner}`);
    const killed = Date.now();
    victim.kill(); // SIGKILL: nothing is finished, nothing released
    await victim.exited;

    const survivor = replicas.find((srv) => srv !== victim);
    const two = await connectSocket(survivor, { auth: caller.auth, track: sockets });
    two.socket.emit('resume_stream', { threadId, lastSeq: 0 });
    const done = await two.log.waitForDone(meta.turnId, { timeout: (LEASE_SECS + 5) * 1000 + 5_000 });
    const tookOver = Date.now() - killed;
    const events = two.log.ofTurn(meta.turnId);
    events.forEach((ev, i) => assert.equal(ev.seq, i + 1, 'the log has no gap'));
    assert.equal(done.status, 'completed');
    assert.ok(events.some((ev) => ev.type === 'status' && ev.status === 'resumed'), 'resumed after the takeover');
    assert.ok(tokenText(events).endsWith(answer));
    assert.equal(tool.requests.filter((r) => r.path === '/hit').length, 1, 'the completed tool call ran once');
    // Finished within the lease, the sweep, and the 4 s the resumed step streams.
    assert.ok(tookOver < (LEASE_SECS + 5) * 1000 + 4_000, `took ${tookOver} ms`);
  });

  test("kill -9 of the replica running a run's attempt: CRASHED, retried elsewhere, one call per attempt", { timeout: 60_000 }, async () => {
    const alive = replicas.filter((srv) => !srv.exitInfo);
    const operator = operatorCaller();
    const triggered = await api(alive[0], 'POST', '/api/v1/agent/trigger/tasks/slow-call/trigger', {
      headers: operator.headers,
      body: { payload: {} },
    });
    assert.equal(triggered.status, 200, JSON.stringify(triggered.json));
    const runId = triggered.json.id;
    const read = async (srv) => (await api(srv, 'GET', `/api/v1/agent/trigger/runs/${runId}`, { headers: operator.headers })).json;
    let run = await read(alive[0]);
    for (let i = 0; run.status !== 'EXECUTING' && i < 200; i++) {
      await sleep(25);
      run = await read(alive[0]);
    }
    assert.equal(run.status, 'EXECUTING', JSON.stringify(run));
    const owner = run.attempts[0].replica;
    const victim = replicas.find((_, i) => `rep-${i}` === owner);
    assert.ok(victim && !victim.exitInfo, `the attempt runs on ${owner}`);
    await sleep(200); // the endpoint has the first call
    victim.kill(); // SIGKILL: the attempt is neither finished nor released
    await victim.exited;

    const survivor = alive.find((srv) => srv !== victim);
    const deadline = Date.now() + (LEASE_SECS + 3 + 3) * 1000 + 10_000;
    do {
      await sleep(100);
      run = await read(survivor);
    } while (!['COMPLETED', 'FAILED', 'CRASHED'].includes(run.status) && Date.now() < deadline);
    assert.equal(run.status, 'COMPLETED', JSON.stringify(run));
    assert.deepEqual(run.attempts.map((a) => a.status), ['CRASHED', 'COMPLETED']);
    assert.notEqual(run.attempts[1].replica, owner);
    const calls = tool.received('/sleep/3000/job').filter((r) => r.headers['x-agentry-run-id'] === runId);
    assert.deepEqual(calls.map((r) => r.headers['x-agentry-attempt']), ['1', '2'], 'one call per attempt');
  });
});
