// Runs a real `agentry serve` for the Node end-to-end tests, the way
// tests/e2e/python/conftest.py does for the Python suite: the binary from
// $AGENTRY_BIN, a temporary data dir and agents dir, a free port on
// 127.0.0.1, a deterministic bootstrap through AGENTRY_SERVICE_SECRET /
// AGENTRY_API_KEY, stdout+stderr in `server.log`, and SIGTERM at the end
// (which must exit 0 within 10 s).
//
// Also: the Socket.IO helpers (connect, collect `agent_event`s, wait for
// one) and small REST helpers shared by the tests, and a real HTTP endpoint
// for agents' HTTP tools (ToolEndpoint, approvalAgentFiles).

import { spawn, execFile } from 'node:child_process';
import http from 'node:http';
import { createHmac, randomUUID } from 'node:crypto';
import { accessSync, closeSync, constants as fsConstants, openSync, readFileSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

import { test } from 'node:test';

import { io } from 'socket.io-client';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export const SERVICE_SECRET = 'e2e-service-secret-0123456789-abcdefghijklmnop'; // 46 chars
export const API_KEY = 'agentry-e2e-operator-key-0123456789';

const STARTUP_TIMEOUT_MS = 20_000;
const SHUTDOWN_TIMEOUT_MS = 10_000;
const LOG_TAIL_CHARS = 12_000;

// Keep in step with AGENT_FILES in tests/e2e/python/conftest.py.
export const AGENT_FILES = {
  'support.toml': `\
id = "support"
name = "Support"
model = "scripted:echo"
system_prompt = "You help {{user.name}}."
`,
  'acme-bot.toml': `\
id = "acme-bot"
name = "Acme Bot"
model = "scripted:echo"
system_prompt = "You answer questions about Acme."
organization = "acme"
project = "web"
environment = "prod"
`,
  'slow-echo.toml': `\
id = "slow-echo"
name = "Slow echo"
model = "scripted:echo"
system_prompt = "Echo."
[script]
token_delay_ms = 30
`,
  'paced-echo.toml': `\
id = "paced-echo"
name = "Paced echo"
model = "scripted:echo"
system_prompt = "Echo."
[script]
token_delay_ms = 250
`,
  'tool-steps.toml': `\
id = "tool-steps"
name = "Tool steps"
model = "scripted:steps"
system_prompt = "Steps."
tools = ["current_time"]
[[script.steps]]
text = "Let me check the time."
tool_calls = [{ name = "current_time", arguments = {} }]
[[script.steps]]
text = "Done checking."
`,
  'broken.toml': `\
id = "broken"
name = "Broken"
model = "scripted:steps"
[[script.steps]]
error = "upstream exploded"
`,
};

// Agents whose HTTP tools call the test's own endpoint (ToolEndpoint), so
// their files depend on its port; `{base}` is its base URL. Keep in step
// with APPROVAL_AGENT_TEMPLATES in tests/e2e/python/conftest.py.
export const APPROVAL_AGENT_TEMPLATES = {
  // A refund that needs a human's approval; its own approval timeout (120 s)
  // overrides the agent's default.
  'refund-approval.toml': `\
id = "refund-approval"
name = "Refund with approval"
model = "scripted:steps"
system_prompt = "Refunds."
approval_timeout_secs = 300

[[http_tools]]
name = "refund"
description = "Refund an order"
method = "POST"
url = "{base}/refund-approval/orders/{order_id}/refund"
parameters = { type = "object", properties = { order_id = { type = "string" }, amount = { type = "number" } }, required = ["order_id"] }
requires_approval = true
approval_timeout_secs = 120
timeout_secs = 10

[[script.steps]]
text = "I will refund order A1."
tool_calls = [{ name = "refund", arguments = { order_id = "A1", amount = 30 } }]

[[script.steps]]
text = "The refund request is settled."
`,
  // The same tool without its own approval timeout: the agent's 1 s applies.
  'refund-timeout.toml': `\
id = "refund-timeout"
name = "Refund that times out"
model = "scripted:steps"
system_prompt = "Refunds."
approval_timeout_secs = 1

[[http_tools]]
name = "refund"
description = "Refund an order"
method = "POST"
url = "{base}/refund-timeout/orders/{order_id}/refund"
parameters = { type = "object", properties = { order_id = { type = "string" }, amount = { type = "number" } } }
requires_approval = true

[[script.steps]]
text = "I will refund order T9."
tool_calls = [{ name = "refund", arguments = { order_id = "T9", amount = 5 } }]

[[script.steps]]
text = "Nobody answered in time."
`,
  // The built-in request_approval: the human's answer is the tool result.
  'ask-approval.toml': `\
id = "ask-approval"
name = "Ask first"
model = "scripted:steps"
system_prompt = "Ask."
tools = ["request_approval"]
approval_timeout_secs = 120

[[script.steps]]
text = "I need a human to confirm."
tool_calls = [{ name = "request_approval", arguments = { action = "Delete the staging database", details = { database = "staging", rows = 1200 } } }]

[[script.steps]]
text = "Thanks for answering."
`,
};

/** APPROVAL_AGENT_TEMPLATES with the tool endpoint's base URL filled in. */
export function approvalAgentFiles(baseUrl) {
  return Object.fromEntries(
    Object.entries(APPROVAL_AGENT_TEMPLATES).map(([name, text]) => [name, text.replaceAll('{base}', baseUrl)]),
  );
}

export function agentryBin() {
  const raw = process.env.AGENTRY_BIN || path.join(REPO, 'target', 'debug', 'agentry');
  try {
    if (!statSync(raw).isFile()) throw new Error('not a file');
    accessSync(raw, fsConstants.X_OK);
  } catch {
    throw new Error(`AGENTRY_BIN=${JSON.stringify(raw)} is not an executable file; build the server first`);
  }
  return raw;
}

function baseEnv() {
  const env = { ...process.env };
  // Make sure nothing from the caller's shell changes the bootstrap.
  for (const key of Object.keys(env)) {
    if (key.startsWith('AGENTRY_') && key !== 'AGENTRY_BIN') delete env[key];
  }
  env.RUST_LOG ??= 'info';
  env.RUST_BACKTRACE ??= '1';
  env.NO_COLOR = '1';
  return env;
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** One running `agentry serve` process. */
export class AgentryServer {
  /**
   * `new AgentryServer()`, `new AgentryServer(binary)` or
   * `new AgentryServer({binary, agentFiles, taskFiles, databaseUrl, env, configToml})`;
   * `agentFiles` (name -> TOML) are written next to AGENT_FILES; `taskFiles`
   * (name -> TOML) are loaded with `--tasks`; `databaseUrl` puts the state in
   * Postgres (replicas share it); `env` adds AGENTRY_* settings; `configToml`
   * is written to agentry.toml and passed with `--config`.
   */
  constructor(options = {}) {
    const { binary = agentryBin(), agentFiles = {}, taskFiles = {}, databaseUrl = null, env = {}, configToml = null } =
      typeof options === 'string' ? { binary: options } : options;
    this.configToml = configToml;
    this.binary = binary;
    this.agentFiles = agentFiles;
    this.taskFiles = taskFiles;
    this.databaseUrl = databaseUrl;
    this.extraEnv = env;
    this.root = null;
    this.port = 0;
    this.proc = null;
    this.exited = null; // Promise<{code, signal}>
    this.exitInfo = null;
  }

  get dataDir() { return path.join(this.root, 'data'); }
  get agentsDir() { return path.join(this.root, 'agents'); }
  get tasksDir() { return path.join(this.root, 'tasks'); }
  get logPath() { return path.join(this.root, 'server.log'); }
  get baseUrl() { return `http://127.0.0.1:${this.port}`; }

  async start() {
    this.root = await mkdtemp(path.join(tmpdir(), 'agentry-node-e2e-'));
    await mkdir(this.dataDir, { recursive: true });
    await mkdir(this.agentsDir, { recursive: true });
    for (const [name, text] of Object.entries({ ...AGENT_FILES, ...this.agentFiles })) {
      await writeFile(path.join(this.agentsDir, name), text);
    }
    if (Object.keys(this.taskFiles).length > 0) {
      await mkdir(this.tasksDir, { recursive: true });
      for (const [name, text] of Object.entries(this.taskFiles)) {
        await writeFile(path.join(this.tasksDir, name), text);
      }
    }
    if (this.configToml !== null) await writeFile(path.join(this.root, 'agentry.toml'), this.configToml);
    this.port = await freePort();
    await this.#spawn();
    return this;
  }

  /**
   * SIGTERM (must exit 0), then `agentry serve` again on the same port and
   * data dir, so clients that reconnect to the old address find the new process.
   */
  async restart() {
    await this.stopGracefully();
    await this.#spawn();
    return this;
  }

  async #spawn() {
    this.exitInfo = null;
    const env = baseEnv();
    env.AGENTRY_SERVICE_SECRET = SERVICE_SECRET;
    env.AGENTRY_API_KEY = API_KEY;
    env.AGENTRY_DEFAULT_MODEL = 'scripted:echo';
    Object.assign(env, this.extraEnv);
    const args = ['serve', '--listen', `127.0.0.1:${this.port}`, '--data-dir', this.dataDir, '--agents', this.agentsDir];
    if (this.databaseUrl) args.push('--database-url', this.databaseUrl);
    if (Object.keys(this.taskFiles).length > 0) args.push('--tasks', this.tasksDir);
    if (this.configToml !== null) args.push('--config', path.join(this.root, 'agentry.toml'));
    const logFd = openSync(this.logPath, 'a');
    try {
      this.proc = spawn(this.binary, args, { cwd: this.root, env, stdio: ['ignore', logFd, logFd] });
    } finally {
      closeSync(logFd); // the child keeps its own copy
    }
    this.exited = new Promise((resolve) => {
      this.proc.once('exit', (code, signal) => resolve((this.exitInfo = { code, signal })));
      this.proc.once('error', (err) => resolve((this.exitInfo = { code: null, signal: null, error: err })));
    });
    await this.waitHealthy();
  }

  async waitHealthy() {
    const deadline = Date.now() + STARTUP_TIMEOUT_MS;
    let lastProblem = 'no answer yet';
    while (Date.now() < deadline) {
      if (this.exitInfo) {
        const { code, signal, error } = this.exitInfo;
        throw new Error(
          `agentry serve exited (code ${code}, signal ${signal}${error ? `, ${error.message}` : ''}) ` +
            `before becoming healthy\n--- server log ---\n${this.logTail()}`,
        );
      }
      try {
        const res = await fetch(`${this.baseUrl}/api/health`, { signal: AbortSignal.timeout(1000) });
        const text = await res.text();
        if (res.status === 200) return;
        lastProblem = `GET /api/health -> ${res.status}: ${text.slice(0, 200)}`;
      } catch (err) {
        lastProblem = `GET /api/health -> ${err.name}: ${err.cause?.code ?? err.message}`;
      }
      await sleep(100);
    }
    this.kill();
    throw new Error(
      `agentry serve did not become healthy within ${STARTUP_TIMEOUT_MS / 1000}s (${lastProblem})\n` +
        `--- server log ---\n${this.logTail()}`,
    );
  }

  /** SIGTERM and return the exit code; throws when it hangs past 10 s. */
  async stop() {
    if (!this.exitInfo) {
      this.proc.kill('SIGTERM');
      let timer;
      const hung = await Promise.race([
        this.exited.then(() => false),
        new Promise((resolve) => {
          timer = setTimeout(() => resolve(true), SHUTDOWN_TIMEOUT_MS);
        }),
      ]);
      clearTimeout(timer);
      if (hung) {
        this.kill();
        throw new Error(
          `agentry serve did not exit within ${SHUTDOWN_TIMEOUT_MS / 1000}s of SIGTERM\n` +
            `--- server log ---\n${this.logTail()}`,
        );
      }
    }
    return this.exitInfo.code;
  }

  /** Stop and throw unless the server exits with code 0. */
  async stopGracefully() {
    const code = await this.stop();
    if (code !== 0) {
      throw new Error(
        `agentry serve exited with code ${code} (signal ${this.exitInfo.signal}) after SIGTERM (expected 0)\n` +
          `--- server log ---\n${this.logTail()}`,
      );
    }
  }

  kill() {
    if (this.proc && !this.exitInfo) this.proc.kill('SIGKILL');
  }

  async removeFiles() {
    if (this.root) await rm(this.root, { recursive: true, force: true });
  }

  logTail(chars = LOG_TAIL_CHARS) {
    let text;
    try {
      text = readFileSync(this.logPath, 'utf8');
    } catch (err) {
      return `<cannot read ${this.logPath}: ${err.message}>`;
    }
    return text.length > chars ? `[... ${text.length - chars} chars omitted ...]\n${text.slice(-chars)}` : text;
  }

  /** `agentry token mint` (secret read from the data dir); returns the JWT. */
  async mintToken({ org = 'default', project = 'default', env = 'default', user, name, agent } = {}) {
    const args = ['token', 'mint', '--org', org, '--project', project, '--env', env, '--user', user];
    if (name !== undefined) args.push('--name', name);
    if (agent !== undefined) args.push('--agent', agent);
    if (this.databaseUrl) args.push('--database-url', this.databaseUrl);
    else args.push('--data-dir', this.dataDir);
    const stdout = await new Promise((resolve, reject) => {
      execFile(this.binary, args, { cwd: this.root, env: baseEnv(), timeout: 30_000 }, (err, out, errOut) => {
        if (err) reject(new Error(`\`agentry ${args.join(' ')}\` failed: ${err.message}\nstdout: ${out}\nstderr: ${errOut}`));
        else resolve(out);
      });
    });
    const lines = stdout.split('\n').filter((l) => l.length > 0);
    if (lines.length !== 1) throw new Error(`token mint must print exactly one line, got ${JSON.stringify(stdout)}`);
    const token = lines[0].trim();
    if (token.split('.').length !== 3) throw new Error(`token mint printed something that is not a JWT: ${stdout}`);
    return token;
  }
}

// ---------------------------------------------------------------------------
// Postgres databases and a TCP proxy that can cut connections
// ---------------------------------------------------------------------------

const ADMIN_URL = process.env.AGENTRY_TEST_POSTGRES_URL || 'postgres://postgres@127.0.0.1:5432/postgres';

/** Runs one SQL statement with psql as the admin user. */
function psql(sql, url = ADMIN_URL) {
  return new Promise((resolve, reject) => {
    execFile('psql', ['-d', url, '-At', '-v', 'ON_ERROR_STOP=1', '-c', sql], { timeout: 30_000 }, (err, out, errOut) => {
      if (err) reject(new Error(`psql ${JSON.stringify(sql)} failed: ${err.message}\n${errOut}`));
      else resolve(out.trim());
    });
  });
}

/** A fresh Postgres database (replicas of one installation share it); `drop()` removes it. */
export class PgDatabase {
  async create() {
    this.name = `agentry_test_${randomUUID().replaceAll('-', '')}`;
    await psql(`CREATE DATABASE ${this.name}`);
    this.url = `${ADMIN_URL.slice(0, ADMIN_URL.lastIndexOf('/'))}/${this.name}`;
    return this;
  }

  /** One value from the database. */
  query(sql) {
    return psql(sql, this.url);
  }

  async drop() {
    if (this.name) await psql(`DROP DATABASE IF EXISTS ${this.name} WITH (FORCE)`);
  }
}

/**
 * A TCP proxy in front of a server: clients connect to it as to the server,
 * and `cut()` destroys every connection at once — what a dropped network does
 * to whatever was in flight.
 */
export class TcpProxy {
  constructor(targetPort) {
    this.targetPort = targetPort;
    this.pairs = new Set();
    this.server = net.createServer((client) => {
      const upstream = net.connect(this.targetPort, '127.0.0.1');
      const pair = [client, upstream];
      this.pairs.add(pair);
      const drop = () => {
        this.pairs.delete(pair);
        client.destroy();
        upstream.destroy();
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
      client.pipe(upstream);
      upstream.pipe(client);
    });
  }

  async start() {
    await new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', resolve);
    });
    return this;
  }

  get port() {
    return this.server.address().port;
  }

  get baseUrl() {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Destroys every open connection; data in flight is lost. */
  cut() {
    for (const [client, upstream] of this.pairs) {
      client.destroy();
      upstream.destroy();
    }
    this.pairs.clear();
  }

  async close() {
    this.cut();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

// ---------------------------------------------------------------------------
// a real endpoint for HTTP tools
// ---------------------------------------------------------------------------

/**
 * A local HTTP server the agents' HTTP tools call. Records every request
 * ({method, path, query, headers, body}; `path` as sent, percent-encoding
 * kept) and answers 200 with JSON describing what it received:
 * {ok: true, method, path, query, body}.
 */
export class ToolEndpoint {
  constructor() {
    this.requests = [];
    this.timers = new Set(); // answers still sleeping; close() drops them
    this.server = http.createServer((req, res) => {
      const chunks = [];
      req.on('data', (chunk) => chunks.push(chunk));
      req.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        let body = null;
        if (raw) {
          try {
            body = JSON.parse(raw);
          } catch {
            body = raw;
          }
        }
        const url = new URL(req.url, 'http://endpoint');
        const query = {};
        for (const [key, value] of url.searchParams) (query[key] ??= []).push(value);
        const recorded = { method: req.method, path: url.pathname, query, headers: req.headers, body };
        this.requests.push(recorded);
        const answer = JSON.stringify({ ok: true, method: req.method, path: url.pathname, query, body });
        // `/sleep/<ms>/…` answers after that many milliseconds.
        const sleep = /^\/sleep\/(\d+)(\/|$)/.exec(url.pathname);
        const timer = setTimeout(() => {
          this.timers.delete(timer);
          if (res.destroyed) return;
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(answer) });
          res.end(answer);
        }, sleep ? Number(sleep[1]) : 0);
        this.timers.add(timer);
      });
    });
  }

  async start() {
    await new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', resolve);
    });
    return this;
  }

  get baseUrl() {
    return `http://127.0.0.1:${this.server.address().port}`;
  }

  /** Requests whose path starts with `prefix`. */
  received(prefix = '') {
    return this.requests.filter((r) => r.path.startsWith(prefix));
  }

  clear() {
    this.requests.length = 0;
  }

  async close() {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.server.closeAllConnections?.();
    await new Promise((resolve) => this.server.close(() => resolve()));
  }
}

// ---------------------------------------------------------------------------
// ids, JWTs, callers
// ---------------------------------------------------------------------------

export function newUser(prefix = 'user') {
  return `${prefix}-${randomUUID().replaceAll('-', '').slice(0, 12)}`;
}

/** A compact HS256 JWT built by hand, so bad variants are easy. */
export function signJwt(claims, secret = SERVICE_SECRET) {
  const enc = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const input = `${enc({ alg: 'HS256', typ: 'JWT' })}.${enc(claims)}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

export function sessionClaims(user, { ttl = 600, iat } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const issued = iat ?? now;
  return {
    organizationId: 'default',
    projectId: 'default',
    environmentId: 'default',
    userId: user,
    entityId: 'default',
    iat: issued,
    exp: issued + ttl,
  };
}

export const DEFAULT_SCOPE = { organizationId: 'default', projectId: 'default', environmentId: 'default' };

/** An end user with a session token: REST headers and the Socket.IO `auth` payload. */
export async function sessionCaller(server, user = newUser()) {
  const token = await server.mintToken({ user });
  return { user, token, headers: { 'X-Platos-Session-Token': token }, auth: { token } };
}

/** An operator (API key) acting as `user` in the default scope. */
export function operatorCaller(user = newUser('op'), apiKey = API_KEY) {
  return {
    user,
    headers: {
      Authorization: `Bearer ${apiKey}`,
      'X-Platos-Organization-Id': DEFAULT_SCOPE.organizationId,
      'X-Platos-Project-Id': DEFAULT_SCOPE.projectId,
      'X-Platos-Environment-Id': DEFAULT_SCOPE.environmentId,
      'X-Platos-User-Id': user,
    },
    auth: { apiKey, ...DEFAULT_SCOPE, userId: user },
  };
}

// ---------------------------------------------------------------------------
// REST
// ---------------------------------------------------------------------------

export async function api(server, method, pathname, { headers = {}, body } = {}) {
  const res = await fetch(server.baseUrl + pathname, {
    method,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await res.text();
  let json;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text };
}

export async function createThread(server, caller, agentId, title) {
  const res = await api(server, 'POST', '/api/v1/agent/threads', { headers: caller.headers, body: { agentId, title } });
  if (res.status !== 201) throw new Error(`create thread (${agentId}) -> ${res.status}: ${res.text}`);
  return res.json.id;
}

export async function listMessages(server, caller, threadId) {
  const res = await api(server, 'GET', `/api/v1/agent/threads/${threadId}/messages`, { headers: caller.headers });
  if (res.status !== 200) throw new Error(`GET messages of ${threadId} -> ${res.status}: ${res.text}`);
  return res.json.messages;
}

// ---------------------------------------------------------------------------
// Socket.IO
// ---------------------------------------------------------------------------

/** Everything one socket received as `agent_event`, with waiting. */
export class EventLog {
  constructor(socket) {
    this.events = [];
    this.disconnects = [];
    this.waiters = new Set();
    socket.on('agent_event', (event) => {
      this.events.push(event);
      this.#wake();
    });
    socket.on('disconnect', (reason) => {
      this.disconnects.push(reason);
      this.#wake();
    });
  }

  #wake() {
    for (const waiter of [...this.waiters]) waiter();
  }

  /**
   * Resolves with the first event at index >= `from` for which
   * `pred(event, index)` holds (events already received count).
   */
  waitFor(pred, { from = 0, timeout = 10_000, what = 'a matching agent_event' } = {}) {
    return new Promise((resolve, reject) => {
      let timer;
      const check = () => {
        for (let i = from; i < this.events.length; i++) {
          if (pred(this.events[i], i)) {
            clearTimeout(timer);
            this.waiters.delete(check);
            resolve(this.events[i]);
            return;
          }
        }
      };
      timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`timed out after ${timeout} ms waiting for ${what}; received: ${this.describe(from)}`));
      }, timeout);
      this.waiters.add(check);
      check();
    });
  }

  /** Waits until `count` token events of `turnId` (any turn when null) arrived after `from`. */
  waitForTokens(count, { turnId = null, from = 0, timeout = 10_000 } = {}) {
    let seen = 0;
    let scanned = from;
    return this.waitFor(
      (ev, i) => {
        if (i < scanned) return false;
        scanned = i + 1;
        if (ev.type === 'token' && (turnId === null || ev.turnId === turnId)) seen += 1;
        return seen >= count;
      },
      { from, timeout, what: `${count} token events` },
    );
  }

  /** The `done` of a turn. */
  waitForDone(turnId, opts = {}) {
    return this.waitFor((ev) => ev.type === 'done' && ev.turnId === turnId, { what: `done of turn ${turnId}`, ...opts });
  }

  ofTurn(turnId) {
    return this.events.filter((ev) => ev.turnId === turnId);
  }

  describe(from = 0) {
    const items = this.events.slice(from).map((ev) => {
      const bits = [ev.type];
      if (ev.seq !== undefined) bits.push(`#${ev.seq}`);
      if (ev.type === 'token') bits.push(JSON.stringify(ev.text));
      if (ev.type === 'error') bits.push(`${ev.code}: ${ev.message}`);
      if (ev.type === 'done') bits.push(ev.status);
      return bits.join(' ');
    });
    const shown = items.length > 80 ? [...items.slice(0, 40), `… ${items.length - 80} more …`, ...items.slice(-40)] : items;
    return `[${shown.join(', ')}]${this.disconnects.length ? ` (disconnected: ${this.disconnects.join(', ')})` : ''}`;
  }
}

/**
 * Opens a socket on `/agent` (websocket only, no automatic reconnection) and
 * waits for the server's `connected` event. Resolves {socket, log, connected}.
 */
export function connectSocket(server, { auth, extraHeaders, timeout = 10_000, track } = {}) {
  const socket = io(`${server.baseUrl}/agent`, {
    path: '/socket.io/',
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
    timeout: 5_000,
    auth,
    extraHeaders,
  });
  track?.add(socket);
  const log = new EventLog(socket);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.disconnect();
      reject(new Error(`no \`connected\` event within ${timeout} ms (socket.connected=${socket.connected})`));
    }, timeout);
    socket.once('connected', (connected) => {
      clearTimeout(timer);
      resolve({ socket, log, connected });
    });
    socket.once('connect_error', (err) => {
      clearTimeout(timer);
      socket.disconnect();
      const detail = err.data ? ` data=${JSON.stringify(err.data)}` : err.description ? ` (${err.description})` : '';
      reject(new Error(`connect_error: ${err.message}${detail}`));
    });
  });
}

/** Opens a socket that is expected to be refused; resolves the connect_error. */
export function expectConnectError(server, { auth, extraHeaders, timeout = 10_000, track } = {}) {
  const socket = io(`${server.baseUrl}/agent`, {
    path: '/socket.io/',
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
    timeout: 5_000,
    auth,
    extraHeaders,
  });
  track?.add(socket);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.disconnect();
      reject(new Error(`neither connect_error nor connected within ${timeout} ms`));
    }, timeout);
    socket.once('connected', (payload) => {
      clearTimeout(timer);
      socket.disconnect();
      reject(new Error(`bad credentials were accepted: connected ${JSON.stringify(payload)}`));
    });
    socket.once('connect_error', (err) => {
      clearTimeout(timer);
      socket.disconnect();
      resolve(err);
    });
  });
}

/** Waits for a named (non agent_event) socket event. */
export function onceEvent(socket, name, { timeout = 10_000, pred = () => true } = {}) {
  return new Promise((resolve, reject) => {
    const handler = (payload) => {
      if (!pred(payload)) return;
      clearTimeout(timer);
      socket.off(name, handler);
      resolve(payload);
    };
    const timer = setTimeout(() => {
      socket.off(name, handler);
      reject(new Error(`no \`${name}\` event within ${timeout} ms`));
    }, timeout);
    socket.on(name, handler);
  });
}

// ---------------------------------------------------------------------------
// turns
// ---------------------------------------------------------------------------

export const words = (text) => text.split(/\s+/).filter(Boolean).length;

export const tokenText = (events) => events.filter((ev) => ev.type === 'token').map((ev) => ev.text).join('');

/**
 * Emits `message` and waits for the turn's `meta` and `done`; returns
 * {meta, done, events} with the events of that turn in arrival order.
 */
export async function runTurn(log, socket, payload, { timeout = 20_000 } = {}) {
  const from = log.events.length;
  socket.emit('message', payload);
  const meta = await log.waitFor((ev) => ev.type === 'meta', { from, timeout, what: 'meta' });
  const done = await log.waitForDone(meta.turnId, { from, timeout });
  return { meta, done, events: log.events.slice(from).filter((ev) => ev.turnId === meta.turnId) };
}

/** Seqs are 1..n in order, every event carries the turn's threadId and turnId, done is last. */
export function assertTurnFrame(assert, events, { threadId, turnId } = {}) {
  assert.ok(events.length >= 2, `a turn has at least meta and done, got ${JSON.stringify(events)}`);
  const meta = events[0];
  assert.equal(meta.type, 'meta', `first event must be meta, got ${JSON.stringify(meta)}`);
  threadId ??= meta.thread_id;
  turnId ??= meta.turnId;
  assert.equal(meta.thread_id, threadId, 'meta.thread_id');
  assert.equal(typeof meta.agent_id, 'string', 'meta.agent_id');
  assert.ok(typeof turnId === 'string' && turnId.length > 0, 'turnId');
  assert.deepEqual(
    events.map((ev) => ev.seq),
    events.map((_, i) => i + 1),
    `seqs must be 1..${events.length} without gaps or duplicates`,
  );
  for (const ev of events) {
    assert.equal(ev.threadId, threadId, `threadId of ${ev.type} #${ev.seq}`);
    assert.equal(ev.turnId, turnId, `turnId of ${ev.type} #${ev.seq}`);
  }
  const doneAt = events.findIndex((ev) => ev.type === 'done');
  assert.equal(doneAt, events.length - 1, `done must be the last event, got types ${events.map((e) => e.type)}`);
  return { meta, done: events[doneAt] };
}

/** The order of a completed turn: meta, status before the first token, …, message_persisted, usage, done. */
export function assertCompletedTurn(assert, events, opts = {}) {
  const { meta, done } = assertTurnFrame(assert, events, opts);
  const types = events.map((ev) => ev.type);
  assert.equal(done.status, 'completed', `done.status (types ${types})`);
  assert.ok(!done.stopped, 'done.stopped must be absent or false on a completed turn');
  const firstToken = types.indexOf('token');
  const firstStatus = types.indexOf('status');
  assert.ok(firstStatus > 0, `a status event must follow meta, types ${types}`);
  if (firstToken !== -1) assert.ok(firstStatus < firstToken, `status must come before the first token, types ${types}`);
  const persisted = types.indexOf('message_persisted');
  const usage = types.indexOf('usage');
  assert.ok(persisted !== -1, `message_persisted missing, types ${types}`);
  assert.ok(usage !== -1, `usage missing, types ${types}`);
  const lastStreamed = Math.max(
    ...['token', 'tool_call', 'tool_result', 'message_boundary'].map((t) => types.lastIndexOf(t)),
  );
  assert.ok(lastStreamed < persisted, `message_persisted must follow the streamed content, types ${types}`);
  assert.ok(persisted < usage && usage < types.length - 1, `order must be message_persisted, usage, done; types ${types}`);
  const persistedEv = events[persisted];
  assert.ok(typeof persistedEv.messageId === 'string' && persistedEv.messageId, 'message_persisted.messageId');
  assert.equal(persistedEv.threadId, meta.thread_id, 'message_persisted.threadId');
  assertUsage(assert, done.usage, 'done.usage');
  assert.equal(events[usage].usage.inputTokens, done.usage.inputTokens, 'usage event and done agree on inputTokens');
  assert.equal(events[usage].usage.outputTokens, done.usage.outputTokens, 'usage event and done agree on outputTokens');
  return { meta, done };
}

export function assertUsage(assert, usage, what = 'usage') {
  assert.ok(usage && typeof usage === 'object', `${what} must be an object, got ${JSON.stringify(usage)}`);
  assert.ok(Number.isInteger(usage.inputTokens) && usage.inputTokens >= 0, `${what}.inputTokens`);
  assert.ok(Number.isInteger(usage.outputTokens) && usage.outputTokens >= 0, `${what}.outputTokens`);
  assert.equal(usage.costCents, 0, `${what}.costCents`);
}

/** What an observer of a turn sees, without ids: for comparing two runs. */
export function shape(events) {
  return events.map((ev) => {
    switch (ev.type) {
      case 'token':
        return `token ${JSON.stringify(ev.text)}`;
      case 'done':
        return `done ${ev.status} in=${ev.usage?.inputTokens} out=${ev.usage?.outputTokens}`;
      case 'usage':
        return `usage in=${ev.usage?.inputTokens} out=${ev.usage?.outputTokens}`;
      default:
        return ev.type;
    }
  });
}

export { sleep };

/** Polls `probe` (sync or async) every `every` ms until it gives a truthy value, and returns it. */
export async function waitFor(what, probe, { timeout = 10_000, every = 10 } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await sleep(every);
  }
}

/**
 * A test against a shared server (`getServer()`): it gets `{t, sockets}`; sockets added to
 * `sockets` are closed afterwards, and a failure carries the tail of the server log.
 */
export function serverTest(getServer, name, fn, { timeout = 30_000 } = {}) {
  test(name, { timeout }, async (t) => {
    const sockets = new Set();
    try {
      await fn({ t, sockets });
    } catch (err) {
      // Attach the server log to the failure (the spec reporter prints the stack).
      const srv = getServer();
      if (srv?.root) {
        const tail = `\n--- agentry server log (${srv.logPath}) ---\n${srv.logTail()}`;
        if (err instanceof Error && typeof err.stack === 'string') err.stack += tail;
        else t.diagnostic(tail);
      }
      throw err;
    } finally {
      for (const socket of sockets) socket.disconnect();
    }
  });
}
