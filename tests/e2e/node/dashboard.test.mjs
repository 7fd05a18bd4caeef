// The operator dashboard in a real browser: Debian's Chromium driven by
// playwright-core against a real `agentry serve`. Each test saves a
// screenshot under target/e2e-screenshots/dashboard/.
//
//   AGENTRY_BIN=target/debug/agentry tests/e2e/run-node.sh --test-name-pattern dashboard
//
// CHROMIUM names the browser (default /usr/bin/chromium, from `apt-get install
// chromium`); a missing browser fails the suite, it never skips it.

import assert from 'node:assert/strict';
import { accessSync, constants as fsConstants, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';

import { chromium } from 'playwright-core';

import {
  AgentryServer, API_KEY, REPO, ToolEndpoint, api, approvalAgentFiles, createThread, operatorCaller,
  signJwt, sessionClaims, sleep, waitFor,
} from './harness.mjs';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = path.join(REPO, 'target', 'e2e-screenshots', 'dashboard');
const slug = (name) => name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');

const PRICED_AGENT = `\
id = "priced-echo"
name = "Priced echo"
model = "scripted:echo"
system_prompt = "Echo."
`;
// Answers with a table and a chart of the dataset `regions` (uploaded by the datasets test).
const ANALYST_AGENT = `\
id = "region-analyst"
name = "Region analyst"
model = "scripted:steps"
system_prompt = "Analyse."
tools = ["query_dataset", "create_chart"]

[[script.steps]]
text = "Looking at the regions."
tool_calls = [
  { name = "query_dataset", arguments = { dataset = "regions", sql = "SELECT region, amount FROM data ORDER BY amount DESC" } },
  { name = "create_chart", arguments = { dataset = "regions", sql = "SELECT region, amount FROM data ORDER BY amount DESC", chart_type = "bar", title = "Amount by region", x = "region", y = ["amount"] } },
]

[[script.steps]]
text = "North leads with 120."
`;
const PRICES = `\
[prices."scripted:echo"]
input = 1000.0
output = 2000.0
`;

function scopedOperator(organizationId, projectId, environmentId) {
  return {
    headers: {
      Authorization: `Bearer ${API_KEY}`,
      'X-Platos-Organization-Id': organizationId,
      'X-Platos-Project-Id': projectId,
      'X-Platos-Environment-Id': environmentId,
    },
  };
}

describe('dashboard in Chromium', () => {
  let server;
  let endpoint;
  let browser;
  const operator = operatorCaller('dash-operator');

  before(async () => {
    try {
      accessSync(CHROMIUM, fsConstants.X_OK);
    } catch {
      throw new Error(`no browser at ${CHROMIUM}: install Debian's chromium (apt-get install chromium) or set CHROMIUM`);
    }
    mkdirSync(SHOTS, { recursive: true });
    endpoint = await new ToolEndpoint().start();
    server = await new AgentryServer({
      agentFiles: {
        ...approvalAgentFiles(endpoint.baseUrl), 'priced-echo.toml': PRICED_AGENT, 'region-analyst.toml': ANALYST_AGENT,
      },
      taskFiles: {
        'slow-call.toml': `id = "slow-call"\nkind = "http"\nurl = "${endpoint.baseUrl}/sleep/60000/slow"\nmax_attempts = 1\n`,
      },
      configToml: PRICES,
    }).start();
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
  });

  after(async () => {
    await browser?.close();
    await server?.stopGracefully();
    await endpoint?.close();
  });

  /**
   * A test with a fresh browser page: a failure saves `<name>-failed.png` and carries the page's
   * console errors.
   */
  function browserTest(name, fn) {
    test(`dashboard: ${name}`, { timeout: 90_000 }, async () => {
      const page = await newPage();
      try {
        await fn(page);
      } catch (err) {
        await page.screenshot({ path: path.join(SHOTS, `${slug(name)}-failed.png`), fullPage: true }).catch(() => {});
        if (err instanceof Error) err.message += `\nconsole: ${JSON.stringify(page.problems)}\n--- server log ---\n${server.logTail()}`;
        throw err;
      } finally {
        await page.context().close().catch(() => {});
      }
    });
  }

  /** A fresh browser context (no cookies) with a page that records console errors. */
  async function newPage({ width = 1280, height = 900 } = {}) {
    const context = await browser.newContext({ viewport: { width, height }, timezoneId: 'America/New_York' });
    const page = await context.newPage();
    page.setDefaultTimeout(15_000);
    page.problems = [];
    page.on('console', (m) => { if (m.type() === 'error') page.problems.push(m.text()); });
    page.on('pageerror', (e) => page.problems.push(`uncaught: ${e.message}`));
    return page;
  }

  async function signIn(page, scopeLabel = 'default / default / default') {
    await page.goto(`${server.baseUrl}/dashboard`);
    await page.fill('#api-key', API_KEY);
    await page.click('button[type=submit]');
    await page.getByRole('button', { name: scopeLabel }).click();
    await page.waitForSelector('[data-card="today-turns"]');
  }

  async function shot(page, name) {
    await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
  }

  async function finish(page, name, { allowed = [] } = {}) {
    await shot(page, name);
    const problems = page.problems.filter((p) => !allowed.some((a) => p.includes(a)));
    assert.deepEqual(problems, [], `console errors on ${name}`);
  }

  browserTest('sign in with an operator key, pick a scope, sign out', async (page) => {
    await page.goto(`${server.baseUrl}/dashboard`);
    await page.fill('#api-key', 'not-a-key');
    await page.click('button[type=submit]');
    await page.getByText('not a valid operator API key').waitFor();
    await page.fill('#api-key', API_KEY);
    await page.click('button[type=submit]');
    // Both scopes that hold agents are offered.
    await page.getByRole('button', { name: 'acme / web / prod' }).waitFor();
    await page.getByRole('button', { name: 'default / default / default' }).click();
    await page.waitForSelector('[data-card="week-turns"]');
    const cookies = await page.context().cookies();
    const cookie = cookies.find((c) => c.name === 'agentry_dashboard');
    assert.ok(cookie?.httpOnly, 'the session cookie is HttpOnly');
    assert.equal(cookie.sameSite, 'Strict');
    // A reload keeps the session; the overview shows.
    await page.reload();
    await page.waitForSelector('[data-card="today-turns"]');
    await shot(page, 'overview');
    // Phone width: nothing wider than the screen.
    await page.setViewportSize({ width: 390, height: 800 });
    const overflow = await page.evaluate(() => document.scrollingElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 1, `the overview overflows a phone screen by ${overflow}px`);
    await shot(page, 'overview-phone');
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForSelector('#api-key');
    const stale = await fetch(`${server.baseUrl}/dashboard/session`, { headers: { cookie: `agentry_dashboard=${cookie.value}` } });
    assert.equal(stale.status, 401, 'signing out ends the session on the server');
    // The refused key at the start is the one failed request.
    await finish(page, 'sign-in', { allowed: ['401'] });
  });

  browserTest('find a thread and open its trace', async (page) => {
    const title = `Trace me ${randomUUID().slice(0, 8)}`;
    const threadId = await createThread(server, operator, 'tool-steps', title);
    const sent = await api(server, 'POST', `/api/v1/agent/threads/${threadId}/messages`, { headers: operator.headers, body: { message: 'what time is it' } });
    assert.equal(sent.status, 200, sent.text);
    await signIn(page);
    await page.click('a[href="#/threads"]');
    await page.fill('input[name=q]', title.toLowerCase());
    await page.click('form[role=search] button[type=submit]');
    await page.getByRole('link', { name: title }).click();
    await page.getByText('Done checking.').waitFor();
    const rows = page.locator('.waterfall .bar-row .name');
    await rows.first().waitFor();
    const names = await rows.allTextContents();
    assert.ok(names.includes('execute_tool current_time'), `waterfall rows: ${names}`);
    assert.ok(names.some((n) => n.startsWith('invoke_agent')), `waterfall rows: ${names}`);
    assert.equal(names.filter((n) => n === 'chat steps').length, 2, `two model calls: ${names}`);
    // Times are shown in the viewer's zone with UTC on hover.
    const hover = await page.locator('.msg time').first().getAttribute('title');
    assert.match(hover, /^UTC \d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
    await finish(page, 'thread-trace');
  });

  browserTest('chat with an agent in the playground', async (page) => {
    await signIn(page);
    await page.goto(`${server.baseUrl}/dashboard#/playground/support`);
    await page.fill('textarea[name=message]', 'hello from the browser');
    await page.keyboard.press('Control+Enter');
    const answer = page.locator('.msg.assistant[data-status="completed"]');
    await answer.waitFor();
    assert.match(await answer.textContent(), /hello from the browser/);
    // The thread it made is in the store, with both messages.
    const threadLink = page.locator('#playground-thread a');
    const threadId = (await threadLink.textContent()).trim();
    const messages = await api(server, 'GET', `/api/v1/agent/threads/${threadId}/messages`, { headers: scopedOperator('default', 'default', 'default').headers });
    assert.deepEqual(messages.json.messages.map((m) => m.role), ['user', 'assistant']);
    await finish(page, 'playground');
  });

  browserTest('an approval raised by a running turn is resolved live, and the turn finishes', async (page) => {
    await signIn(page);
    await page.click('a[href="#/approvals"]');
    await page.getByText('No approval is waiting').waitFor();
    // A turn asks; the queue shows it without a reload.
    const threadId = await createThread(server, operator, 'ask-approval', 'needs a human');
    const stream = fetch(`${server.baseUrl}/api/v1/agent/threads/${threadId}/stream`, {
      method: 'POST', headers: { ...operator.headers, 'content-type': 'application/json' },
      body: JSON.stringify({ message: 'please delete staging' }),
    }).then((res) => res.text());
    const card = page.locator('.approval', { hasText: 'Delete the staging database' });
    await card.waitFor();
    await page.waitForFunction(() => document.getElementById('approvals-badge')?.textContent === '1');
    await card.locator('input[name=comment]').fill('ok from the dashboard');
    // A second turn asks while the comment is being typed: its card appears, the comment stays.
    const second = await createThread(server, operator, 'ask-approval', 'needs a human too');
    const secondStream = fetch(`${server.baseUrl}/api/v1/agent/threads/${second}/stream`, {
      method: 'POST', headers: { ...operator.headers, 'content-type': 'application/json' },
      body: JSON.stringify({ message: 'please delete staging too' }),
    }).then((res) => res.text());
    await page.waitForFunction(() => document.getElementById('approvals-badge')?.textContent === '2');
    await page.locator('.approval').nth(1).waitFor();
    const comments = await page.locator('.approval input[name=comment]').evaluateAll((inputs) => inputs.map((i) => i.value));
    const typed = comments.indexOf('ok from the dashboard');
    assert.notEqual(typed, -1, `the comment being typed is kept when another approval arrives: ${JSON.stringify(comments)}`);
    await page.locator('.approval').nth(typed).getByRole('button', { name: 'Approve' }).click();
    await page.waitForFunction(() => document.getElementById('approvals-badge')?.textContent === '1');
    await page.locator('.approval').getByRole('button', { name: 'Approve' }).click();
    await page.getByText('No approval is waiting').waitFor();
    assert.match(await secondStream, /"type":"done"/);
    const events = (await stream).split('\n').filter((l) => l.startsWith('data:')).map((l) => JSON.parse(l.slice(5)));
    const done = events.find((e) => e.type === 'done');
    assert.equal(done?.status, 'completed');
    const text = events.filter((e) => e.type === 'token').map((e) => e.text).join('');
    assert.match(text, /Thanks for answering\./);
    const resolved = events.find((e) => e.type === 'approval_resolved');
    assert.equal(resolved.status, 'approved');
    assert.equal(resolved.comment, 'ok from the dashboard');
    await shot(page, 'approvals-queue');
    // Inline in the playground too.
    await page.goto(`${server.baseUrl}/dashboard#/playground/ask-approval`);
    await page.fill('textarea[name=message]', 'again');
    await page.getByRole('button', { name: 'Send' }).click();
    const inline = page.locator('.approval-box');
    await inline.getByRole('button', { name: 'Approve' }).click();
    await page.locator('.msg.assistant[data-status="completed"]').waitFor();
    assert.match(await page.locator('.msg.assistant').last().textContent(), /Thanks for answering\./);
    await finish(page, 'approvals');
  });

  browserTest('a budget cap made in the dashboard blocks a turn, an override lets it through', async (page) => {
    await signIn(page);
    await page.click('a[href="#/budgets"]');
    await page.getByText('No budget cap yet').waitFor();
    const form = page.locator('form.cap-form').last();
    await form.locator('select[name=scopeType]').selectOption('agent');
    await form.locator('input[name=targetId]').fill('priced-echo');
    await form.locator('select[name=period]').selectOption('day');
    await form.locator('input[name=limitCents]').fill('0.0001');
    await form.getByRole('button', { name: 'Create cap' }).click();
    const row = page.locator('#caps tbody tr', { hasText: 'agent priced-echo' });
    await row.waitFor();
    await page.locator('#caps [role=progressbar]').first().waitFor();
    await shot(page, 'budgets');
    await page.goto(`${server.baseUrl}/dashboard#/playground/priced-echo`);
    await page.fill('textarea[name=message]', 'spend something');
    await page.getByRole('button', { name: 'Send' }).click();
    // The `error` event shows before `done` marks the answer failed: wait for both.
    await page.locator('.msg.assistant[data-status="failed"] [data-error="budget_cap"]').waitFor();
    // Override for 30 minutes: the next turn goes through.
    await page.click('a[href="#/budgets"]');
    await row.waitFor();
    await row.getByRole('button', { name: 'Override' }).click();
    await page.locator('#caps .status.overridden').waitFor();
    await page.goto(`${server.baseUrl}/dashboard#/playground/priced-echo`);
    await page.fill('textarea[name=message]', 'now it may');
    await page.getByRole('button', { name: 'Send' }).click();
    await page.locator('.msg.assistant[data-status="completed"]').waitFor();
    // Delete it.
    await page.click('a[href="#/budgets"]');
    page.once('dialog', (d) => d.accept());
    await row.getByRole('button', { name: 'Delete' }).click();
    await page.getByText('No budget cap yet').waitFor();
    await finish(page, 'budget-blocks');
  });

  browserTest('cancel a running job', async (page) => {
    const triggered = await api(server, 'POST', '/api/v1/agent/trigger/tasks/slow-call/trigger', { headers: operator.headers, body: { payload: { n: 1 } } });
    assert.equal(triggered.status, 200, triggered.text);
    const runId = triggered.json.id;
    await signIn(page);
    await page.goto(`${server.baseUrl}/dashboard#/jobs/run/${runId}`);
    // The page follows the run live: queued → executing (the endpoint holds the call for 60 s).
    await page.locator('#run-status .status.EXECUTING').waitFor();
    await page.getByRole('button', { name: 'Cancel run' }).click();
    await page.locator('#run-status .status.CANCELED').waitFor();
    const run = await api(server, 'GET', `/api/v1/agent/trigger/runs/${runId}`, { headers: operator.headers });
    assert.equal(run.json.status, 'CANCELED');
    await page.click('a[href="#/jobs"]');
    await page.locator('#runs tr', { hasText: runId }).locator('.status.CANCELED').waitFor();
    await page.locator('#schedules').waitFor();
    await finish(page, 'jobs-cancel');
  });

  browserTest('a run page that loads while the run ends catches up with the live update', async (page) => {
    const runs = '/api/v1/agent/trigger/runs';
    const triggered = await api(server, 'POST', '/api/v1/agent/trigger/tasks/slow-call/trigger', { headers: operator.headers, body: { payload: { n: 2 } } });
    assert.equal(triggered.status, 200, triggered.text);
    const runId = triggered.json.id;
    const statusNow = async () => (await api(server, 'GET', `${runs}/${runId}`, { headers: operator.headers })).json.status;
    await waitFor('the run to execute', async () => (await statusNow()) === 'EXECUTING', { every: 50 });
    await signIn(page);
    // The page's read of the run answers what the run was when it was read, but only after the
    // run was cancelled and its live update sent: the update comes while the page still loads.
    let held = 0;
    await page.route(`**/dashboard/api/v1/agent/trigger/runs/${runId}`, async (route) => {
      held += 1;
      const read = await route.fetch();
      const body = await read.text();
      assert.equal(JSON.parse(body).status, 'EXECUTING');
      const canceled = await api(server, 'POST', `${runs}/${runId}/cancel`, { headers: operator.headers, body: {} });
      assert.equal(canceled.status, 200, canceled.text);
      await waitFor('the run to be cancelled', async () => (await statusNow()) === 'CANCELED', { every: 50 });
      await sleep(500);
      await route.fulfill({ response: read, body });
    }, { times: 1 });
    await page.goto(`${server.baseUrl}/dashboard#/jobs/run/${runId}`);
    await page.locator('#run-status .status.CANCELED').waitFor();
    assert.equal(held, 1, "the page's read of the run was held back");
    await finish(page, 'jobs-run-catches-up');
  });

  browserTest("a second scope's data never appears", async (page) => {
    const secret = `acme-secret-${randomUUID().slice(0, 8)}`;
    const acme = scopedOperator('acme', 'web', 'prod');
    const created = await api(server, 'POST', '/api/v1/agent/threads', { headers: acme.headers, body: { agentId: 'acme-bot', title: secret } });
    assert.equal(created.status, 201, created.text);
    await api(server, 'POST', `/api/v1/agent/threads/${created.json.id}/messages`, { headers: acme.headers, body: { message: secret } });
    await signIn(page);
    for (const where of ['#/threads', '#/agents', '#/overview', '#/cost', '#/approvals?status=all']) {
      await page.goto(`${server.baseUrl}/dashboard${where}`);
      await page.locator('main h1').waitFor();
      await sleep(300);
      const text = await page.locator('main').textContent();
      assert.ok(!text.includes(secret) && !text.includes('acme-bot') && !text.includes(created.json.id), `${where} shows acme data`);
    }
    await page.goto(`${server.baseUrl}/dashboard#/threads?q=${secret}`);
    await page.getByText('No thread matches').waitFor();
    await page.goto(`${server.baseUrl}/dashboard#/threads/${created.json.id}`);
    await page.getByText('thread not found').waitFor();
    await shot(page, 'other-scope-hidden');
    // The same browser in the acme scope sees it: the test would notice a page that shows nothing.
    await page.goto(`${server.baseUrl}/dashboard#/scope`);
    await page.getByRole('button', { name: 'acme / web / prod' }).click();
    await page.waitForSelector('[data-card="today-turns"]');
    await page.goto(`${server.baseUrl}/dashboard#/threads?q=${secret}`);
    await page.getByRole('link', { name: secret }).waitFor();
    await finish(page, 'other-scope', { allowed: ['404'] });
  });

  browserTest('preview and query a dataset; a thread shows the table and chart an agent made of it', async (page) => {
    const slug = 'regions';
    const upload = await fetch(`${server.baseUrl}/datasets`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'x-organization-id': 'default', 'content-type': 'application/json' },
      body: JSON.stringify({ slug, name: 'Sales by region', content: 'region,amount\nnorth,120\nsouth,80\neast,45\n' }),
    });
    assert.equal(upload.status, 201, await upload.text());
    await signIn(page);
    await page.click('a[href="#/datasets"]');
    await page.getByRole('link', { name: 'Sales by region' }).click();
    // The preview runs at once; then a query of our own.
    await page.locator('#query-result td', { hasText: 'south' }).waitFor();
    await page.fill('textarea[name=query]', 'SELECT region, amount FROM data WHERE amount > 100');
    await page.getByRole('button', { name: 'Run' }).click();
    await page.locator('#query-result', { hasText: '1 row' }).waitFor();
    assert.deepEqual(await page.locator('#query-result tbody td').allTextContents(), ['north', '120']);
    // Only reads: the sandbox refuses a write (403), and the page says so.
    await page.fill('textarea[name=query]', 'DELETE FROM data');
    await page.getByRole('button', { name: 'Run' }).click();
    await page.locator('#query-result .error').waitFor();
    await shot(page, 'datasets');
    // An agent's answer with a table and a chart of it, on the thread page.
    const threadId = await createThread(server, operator, 'region-analyst', 'Regions report');
    const sent = await api(server, 'POST', `/api/v1/agent/threads/${threadId}/messages`, { headers: operator.headers, body: { message: 'report' } });
    assert.equal(sent.status, 200, sent.text);
    await page.goto(`${server.baseUrl}/dashboard#/threads/${threadId}`);
    const tableItem = page.locator('[data-content=table]');
    await tableItem.waitFor();
    assert.deepEqual(await tableItem.locator('tbody tr').first().locator('td').allTextContents(), ['north', '120']);
    const chart = page.locator('[data-content=chart]');
    assert.match(await chart.locator('h3').textContent(), /Amount by region/);
    assert.equal(await chart.locator('svg rect').count(), 3, 'one bar per region');
    await finish(page, 'content-items', { allowed: ['403'] });
  });

  browserTest('the API reference at /docs renders /openapi.json with the network cut off', async (page) => {
    // Only this server is reachable: any other request the page made would be aborted and noted.
    const outside = [];
    await page.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith(server.baseUrl)) return route.continue();
      outside.push(url);
      return route.abort();
    });
    await page.goto(`${server.baseUrl}/docs`);
    await page.getByRole('heading', { name: 'Agentry API' }).waitFor();
    const document = await (await fetch(`${server.baseUrl}/openapi.json`)).json();
    const operations = Object.values(document.paths).reduce((n, item) => n + Object.keys(item).length, 0);
    assert.equal(await page.locator('section.op[data-search]').count(), operations, 'one section per operation');
    const thread = page.locator('section#post_api_v1_agent_threads');
    assert.match(await thread.textContent(), /Body: CreateThread/);
    assert.match(await thread.textContent(), /apiKey or sessionToken/);
    const list = await page.locator('section#get_api_v1_agent_threads').textContent();
    assert.match(list, /Query parameters/);
    assert.match(list, /limitinteger 1\.\.=200At most this many rows/);
    await page.fill('#filter', 'budgets');
    const shown = await page.locator('section.op[data-search]:visible').count();
    assert.ok(shown > 0 && shown < operations, `${shown} of ${operations} shown for "budgets"`);
    assert.deepEqual(outside, [], 'the page fetched nothing from elsewhere');
    await finish(page, 'api-docs');
  });

  test('dashboard routes refuse a missing or forged session, cross-site writes and end-user tokens', async () => {
    const routes = dashboardRoutes();
    assert.ok(routes.length > 60, `routes found: ${routes.length}`);
    // A real session, for the cases that need one.
    const signIn = await fetch(`${server.baseUrl}/dashboard/session`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ apiKey: API_KEY }),
    });
    assert.equal(signIn.status, 201);
    const cookie = signIn.headers.get('set-cookie').split(';')[0];
    const { csrfToken } = await signIn.json();
    const scoped = await fetch(`${server.baseUrl}/dashboard/session/scope`, {
      method: 'PUT', headers: { cookie, 'x-csrf-token': csrfToken, 'content-type': 'application/json' },
      body: JSON.stringify({ organizationId: 'default', projectId: 'default', environmentId: 'default' }),
    });
    assert.equal(scoped.status, 200);
    const endUserToken = signJwt(sessionClaims('mallory'));
    const call = async (method, url, headers) => {
      const res = await fetch(server.baseUrl + url, {
        method, headers: { ...headers, ...(method === 'GET' ? {} : { 'content-type': 'application/json' }) },
        body: method === 'GET' ? undefined : '{}', signal: AbortSignal.timeout(5000),
      });
      await res.body?.cancel();
      return res.status;
    };
    const failures = [];
    const expect = (what, got, want) => { if (got !== want) failures.push(`${what}: ${got}, expected ${want}`); };
    for (const [method, url] of routes) {
      expect(`${method} ${url} without a session`, await call(method, url, {}), 401);
      expect(`${method} ${url} with a forged session`, await call(method, url, { cookie: 'agentry_dashboard=dsh_forged' }), 401);
      expect(`${method} ${url} with an end-user token`, await call(method, url, { 'x-platos-session-token': endUserToken }), 401);
      expect(`${method} ${url} with an end-user token beside the cookie`,
        await call(method, url, { cookie, 'x-platos-session-token': endUserToken }), 401);
      expect(`${method} ${url} with an API key beside the cookie`,
        await call(method, url, { cookie, authorization: `Bearer ${API_KEY}` }), 401);
      if (method !== 'GET') {
        expect(`${method} ${url} without the CSRF token`, await call(method, url, { cookie }), 403);
        expect(`${method} ${url} from another site`,
          await call(method, url, { cookie, 'x-csrf-token': csrfToken, origin: 'https://evil.example' }), 403);
        expect(`${method} ${url} from a sandboxed frame`,
          await call(method, url, { cookie, 'x-csrf-token': csrfToken, 'sec-fetch-site': 'cross-site' }), 403);
      }
    }
    // Signing in from another site is refused too (login CSRF).
    const crossSignIn = await fetch(`${server.baseUrl}/dashboard/session`, {
      method: 'POST', headers: { 'content-type': 'application/json', origin: 'https://evil.example' }, body: JSON.stringify({ apiKey: API_KEY }),
    });
    assert.equal(crossSignIn.status, 403);
    assert.deepEqual(failures, [], `${failures.length} of ${routes.length} routes misbehaved`);
    // The page itself and its assets need no session; the session routes and the API do.
    assert.equal((await fetch(`${server.baseUrl}/dashboard`)).status, 200);
    const script = await fetch(`${server.baseUrl}/dashboard/assets/app.js`);
    assert.equal(script.status, 200);
    assert.match(script.headers.get('content-security-policy'), /script-src 'self'/);
  });
});

/**
 * Every route of the dashboard that needs a session, read from the router's
 * source: the session routes, the live feed, and each Platos route mounted
 * under /dashboard/api/v1/agent. A route added to the router is checked
 * without touching this test.
 */
function dashboardRoutes() {
  const read = (file) => readFileSync(path.join(REPO, 'crates/server/src', file), 'utf8');
  const out = [];
  const collect = (source, prefix, skip = () => false) => {
    // The route tables: `at(Get, "/path", handler),` (crates/server/src/routes.rs).
    for (const [, verb, route] of source.matchAll(/\bat\((Get|Post|Put|Patch|Delete), "([^"]+)",/g)) {
      const url = prefix + route.replace(/\{[a-z_]+\}/g, (p) => `${p.slice(1, -1)}_x`);
      const method = verb.toUpperCase();
      if (!skip(method, route)) out.push([method, url]);
    }
  };
  collect(read('platos/mod.rs'), '/dashboard/api/v1/agent');
  // The page, its assets and the sign-in itself are open.
  collect(read('dashboard/mod.rs'), '', (method, route) =>
    route === '/dashboard' || route === '/dashboard/' || route.startsWith('/dashboard/assets') ||
    (route === '/dashboard/session' && method === 'POST'));
  return out;
}

