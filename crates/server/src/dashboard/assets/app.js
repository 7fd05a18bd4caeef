// Agentry operator dashboard. Plain JavaScript, no build step, nothing fetched from elsewhere.
//
// It signs in with an operator API key (POST /dashboard/session: an HttpOnly cookie holds the
// session), picks a scope, then reads and writes through the Platos API mounted again under
// /dashboard/api/v1/agent: the same handlers and scoped queries as /api/v1/agent. Writes carry
// the session's CSRF token. /dashboard/live streams approvals, budget alerts and run updates.
// Everything shown is built with DOM nodes and text, never from HTML strings; artifacts (already
// sanitised by the server) are shown in sandboxed frames without scripts.

const API = '/dashboard/api/v1/agent';
let session = null; // {apiKeyId, keyOrganizationId, csrfToken, scope, expiresAt}
let live = null; // EventSource of /dashboard/live
let renderSeq = 0; // a page render that is no longer current stops drawing
const liveHandlers = new Set(); // page listeners of live events, cleared on each page change

// ---------------------------------------------------------------- requests

class HttpError extends Error {
  constructor(status, data, fallback) {
    super((data && (data.message || data.error)) || fallback);
    this.status = status;
    this.data = data;
  }
}

async function request(url, { method = 'GET', body, headers = {}, signal } = {}) {
  const sent = { ...headers };
  if (body !== undefined) sent['content-type'] = 'application/json';
  if (method !== 'GET' && session) sent['x-csrf-token'] = session.csrfToken;
  const res = await fetch(url, {
    method, headers: sent, signal, credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 204) return null;
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!res.ok) {
    if (res.status === 401 && session) { session = null; closeLive(); render(); }
    throw new HttpError(res.status, data, `${res.status} ${res.statusText}`);
  }
  return data;
}

const api = (path, options) => request(API + path, options);
const q = (params) => {
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') search.set(k, v);
  const text = search.toString();
  return text ? `?${text}` : '';
};

// ---------------------------------------------------------------- DOM helpers

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.setAttribute('class', v);
    else if (k === 'value') el.value = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
}

function clear(el) { while (el.firstChild) el.firstChild.remove(); }

function toast(text, isError = false) {
  const el = h('div', { class: 'toast' + (isError ? ' error' : ''), role: 'status' }, text);
  document.body.append(el);
  setTimeout(() => el.remove(), 4000);
}

/** A time in the viewer's zone, with UTC on hover. */
function when(value) {
  if (value === null || value === undefined || value === '') return h('span', { class: 'muted' }, '—');
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return h('time', { datetime: date.toISOString(), title: `UTC ${date.toISOString().replace('T', ' ').slice(0, 19)}` },
    date.toLocaleString());
}

function money(cents) {
  const dollars = (Number(cents) || 0) / 100;
  if (dollars === 0) return '$0';
  return '$' + (Math.abs(dollars) >= 1 ? dollars.toFixed(2) : dollars.toPrecision(3));
}

const num = (n) => (Number(n) || 0).toLocaleString();
const ms = (n) => (n === null || n === undefined ? '—' : `${Math.round(Number(n) * 10) / 10} ms`);
const status = (text) => h('span', { class: `status ${text}` }, text || '—');
const link = (href, text) => h('a', { href }, text);
const json = (value) => h('pre', {}, JSON.stringify(value, null, 2));

function table(columns, rows, { empty = 'Nothing here yet.', onRow } = {}) {
  if (!rows || rows.length === 0) return h('p', { class: 'empty' }, empty);
  return h('table', {},
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { class: c.num ? 'num' : null, scope: 'col' }, c.label)))),
    h('tbody', {}, rows.map((row) => h('tr', {
      class: onRow ? 'clickable' : null,
      tabindex: onRow ? '0' : null,
      onclick: onRow ? () => onRow(row) : null,
      onkeydown: onRow ? (e) => { if (e.key === 'Enter') onRow(row); } : null,
    }, columns.map((c) => h('td', { class: c.num ? 'num' : null }, c.cell(row)))))));
}

function errorBox(err) {
  return h('p', { class: 'error', role: 'alert' }, err instanceof Error ? err.message : String(err));
}

/** A button that runs `action`, disabled while it runs; errors become a toast. */
function button(label, action, cls = '') {
  const el = h('button', { type: 'button', class: cls }, label);
  el.addEventListener('click', async () => {
    el.disabled = true;
    try { await action(); } catch (err) { toast(err.message, true); } finally { el.disabled = false; }
  });
  return el;
}

// ---------------------------------------------------------------- live events

function openLive() {
  closeLive();
  live = new EventSource('/dashboard/live');
  for (const kind of ['approval', 'alert', 'run']) {
    live.addEventListener(kind, (e) => {
      let data = null;
      try { data = JSON.parse(e.data); } catch { return; }
      if (kind === 'approval') refreshBadge();
      if (kind === 'alert') toast(`Budget alert: ${data.message || data.capId || 'a cap crossed a threshold'}`);
      for (const handler of liveHandlers) handler(kind, data);
    });
  }
}

function closeLive() {
  if (live) live.close();
  live = null;
}

async function refreshBadge() {
  const badge = document.getElementById('approvals-badge');
  if (!badge) return;
  try {
    const data = await api('/monitoring/approvals' + q({ status: 'pending', limit: 1 }));
    const count = data.pendingCount ?? data.approvals.length;
    badge.textContent = String(count);
    badge.hidden = count === 0;
  } catch { /* the page shows errors; the badge stays as it was */ }
}

// ---------------------------------------------------------------- shell

const PAGES = [
  ['overview', 'Overview'], ['agents', 'Agents'], ['threads', 'Threads'], ['playground', 'Playground'],
  ['approvals', 'Approvals'], ['budgets', 'Budgets'], ['cost', 'Cost'], ['jobs', 'Jobs'],
  ['safety', 'Safety'], ['tools', 'Tools'], ['datasets', 'Datasets'],
];

function route() {
  const parts = location.hash.replace(/^#\/?/, '').split('?')[0].split('/').filter(Boolean).map(decodeURIComponent);
  return { page: parts[0] || 'overview', args: parts.slice(1) };
}

async function boot() {
  // The page says whether this browser has a live session; only then is there one to fetch.
  if (document.querySelector('meta[name="agentry-session"]')) {
    try { session = await request('/dashboard/session'); } catch { session = null; }
  }
  if (session && session.scope) openLive();
  window.addEventListener('hashchange', render);
  render();
}

function render() {
  const seq = ++renderSeq;
  liveHandlers.clear();
  const root = document.getElementById('app');
  clear(root);
  if (!session) return signInPage(root);
  if (!session.scope || route().page === 'scope') return scopePage(root);
  const { page, args } = route();
  const main = h('main', { id: 'main' });
  const nav = h('nav', { class: 'side', 'aria-label': 'Dashboard' },
    h('div', { class: 'brand' }, 'Agentry'),
    PAGES.map(([id, label]) => h('a', { href: `#/${id}`, class: id === page ? 'active' : null,
      'aria-current': id === page ? 'page' : null },
    label, id === 'approvals' ? h('span', { class: 'badge', id: 'approvals-badge', hidden: true }, '0') : null)));
  const sc = session.scope;
  const top = h('header', { class: 'top' },
    h('div', { class: 'scope' }, `${sc.organizationId} / ${sc.projectId} / ${sc.environmentId}`),
    h('div', { class: 'row' },
      link('#/scope', 'Change scope'),
      button('Sign out', async () => {
        await request('/dashboard/session', { method: 'DELETE' });
        session = null; closeLive(); location.hash = ''; render();
      })));
  main.append(top);
  const body = h('div', {});
  main.append(body);
  root.append(h('div', { class: 'layout' }, nav, main));
  refreshBadge();
  const draw = VIEWS[page] || notFoundPage;
  Promise.resolve(draw(body, args, () => seq === renderSeq)).catch((err) => {
    if (seq === renderSeq) body.append(errorBox(err));
  });
}

function notFoundPage(body) {
  body.append(h('h1', {}, 'Not found'), h('p', {}, 'There is no such page. ', link('#/overview', 'Go to the overview.')));
}

// ---------------------------------------------------------------- sign-in and scope

function signInPage(root) {
  const key = h('input', { type: 'password', name: 'apiKey', id: 'api-key', autocomplete: 'off', required: true });
  const problem = h('p', { class: 'error', role: 'alert' });
  const form = h('form', { class: 'panel', onsubmit: async (e) => {
    e.preventDefault();
    problem.textContent = '';
    try {
      session = await request('/dashboard/session', { method: 'POST', body: { apiKey: key.value } });
      render();
    } catch (err) { problem.textContent = err.message; }
  } },
  h('h1', {}, 'Sign in to Agentry'),
  h('label', { for: 'api-key' }, 'Operator API key', key),
  h('p', { class: 'muted' }, 'The key `agentry serve` printed at its first start, or one made with `agentry keys create`.'),
  h('button', { type: 'submit', class: 'primary' }, 'Sign in'), problem);
  root.append(h('div', { class: 'signin' }, form));
  key.focus();
}

async function scopePage(root) {
  const box = h('div', { class: 'signin' });
  root.append(box);
  const problem = h('p', { class: 'error', role: 'alert' });
  const pick = async (scope) => {
    try {
      session = await request('/dashboard/session/scope', { method: 'PUT', body: scope });
      openLive();
      if (location.hash === '#/overview') render();
      else location.hash = '#/overview';
    } catch (err) { problem.textContent = err.message; }
  };
  const panel = h('div', { class: 'panel' }, h('h1', {}, 'Pick a scope'));
  box.append(panel);
  let scopes = [];
  try { scopes = (await request('/dashboard/scopes')).scopes; } catch (err) { panel.append(errorBox(err)); }
  panel.append(scopes.length
    ? h('div', { class: 'scopes' }, scopes.map((sc) => h('p', {}, button(
      `${sc.organizationId} / ${sc.projectId} / ${sc.environmentId}`, () => pick(sc), 'scope-choice'))))
    : h('p', { class: 'empty' }, 'No scope holds agents or threads yet. Name one below, or apply an agent first.'));
  const org = h('input', { name: 'organizationId', value: session.keyOrganizationId || '', 'aria-label': 'Organization' });
  const project = h('input', { name: 'projectId', 'aria-label': 'Project' });
  const env = h('input', { name: 'environmentId', 'aria-label': 'Environment' });
  panel.append(h('h2', {}, 'Another scope'), h('form', { class: 'inline', onsubmit: (e) => {
    e.preventDefault();
    pick({ organizationId: org.value, projectId: project.value, environmentId: env.value });
  } }, h('label', {}, 'Organization', org), h('label', {}, 'Project', project), h('label', {}, 'Environment', env),
  h('button', { type: 'submit' }, 'Open')), problem);
  if (session.scope) panel.append(h('p', {}, link('#/overview', 'Back')));
}

// ---------------------------------------------------------------- overview

async function overviewPage(body, _args, current) {
  body.append(h('h1', {}, 'Overview'));
  const [today, week, approvals, running, failed] = await Promise.all([
    api('/monitoring/summary' + q({ days: 1 })),
    api('/monitoring/summary' + q({ days: 7 })),
    api('/monitoring/approvals' + q({ status: 'pending', limit: 5 })),
    api('/trigger/runs' + q({ status: 'EXECUTING', limit: 10 })),
    api('/turns' + q({ status: 'failed', limit: 10 })),
  ]);
  if (!current()) return;
  const card = (label, value, id) => h('div', { class: 'card', 'data-card': id }, h('div', { class: 'label' }, label), h('div', { class: 'value' }, value));
  for (const [label, sum, id] of [['Today', today, 'today'], ['This week', week, 'week']]) {
    body.append(h('h2', {}, label), h('div', { class: 'cards' },
      card('Turns', num(sum.turns), `${id}-turns`), card('Cost', money(sum.costCents), `${id}-cost`),
      card('Failures', num(sum.failures), `${id}-failures`), card('p95 latency', ms(sum.p95LatencyMs), `${id}-p95`)));
  }
  body.append(h('div', { class: 'cards' },
    card('Pending approvals', num(approvals.pendingCount ?? approvals.approvals.length), 'pending'),
    card('Running jobs', num(running.runs.length), 'running-jobs')));
  body.append(h('h2', {}, 'Pending approvals'), h('div', { class: 'panel' }, table([
    { label: 'Asked', cell: (a) => when(a.createdAt) },
    { label: 'Agent', cell: (a) => a.agentId },
    { label: 'What', cell: (a) => a.question || a.action },
  ], approvals.approvals, { empty: 'No approval is waiting.', onRow: () => { location.hash = '#/approvals'; } })));
  body.append(h('h2', {}, 'Running jobs'), h('div', { class: 'panel' }, table([
    { label: 'Run', cell: (r) => link(`#/jobs/run/${r.id}`, r.id) },
    { label: 'Task', cell: (r) => r.taskId },
    { label: 'Started', cell: (r) => when(r.startedAt) },
  ], running.runs, { empty: 'No background run is executing.' })));
  body.append(h('h2', {}, 'Recent errors'), h('div', { class: 'panel' }, table([
    { label: 'When', cell: (t) => when(t.createdAt) },
    { label: 'Agent', cell: (t) => t.agentId },
    { label: 'Thread', cell: (t) => link(`#/threads/${t.threadId}`, t.threadId) },
    { label: 'Error', cell: (t) => (t.error && (t.error.message || t.error.code)) || JSON.stringify(t.error) },
  ], failed.turns, { empty: 'No turn failed recently.' })));
  liveHandlers.add((kind) => { if (kind !== 'alert' && current()) render(); });
}

// ---------------------------------------------------------------- agents

async function agentsPage(body, args, current) {
  if (args[0]) return agentPage(body, args[0], current);
  body.append(h('h1', {}, 'Agents'));
  const { agents } = await api('/agents');
  if (!current()) return;
  body.append(h('div', { class: 'panel' }, table([
    { label: 'Name', cell: (a) => link(`#/agents/${encodeURIComponent(a.id)}`, a.name) },
    { label: 'Id', cell: (a) => h('code', {}, a.id) },
    { label: 'Model', cell: (a) => a.model },
    { label: 'Version', num: true, cell: (a) => a.versionNumber },
    { label: 'Updated', cell: (a) => when(a.updatedAt) },
  ], agents, { empty: 'No agents yet: apply agent files with `agentry agents apply DIR` or `serve --agents DIR`.' })));
}

async function agentPage(body, id, current) {
  const enc = encodeURIComponent(id);
  const [agent, { versions }, threads] = await Promise.all([
    api(`/agents/${enc}`), api(`/agents/${enc}/versions`), api('/threads' + q({ agentId: id, limit: 20, archived: 'true' })),
  ]);
  if (!current()) return;
  body.append(h('h1', {}, agent.name, ' ', h('code', { class: 'muted' }, agent.id)),
    h('p', {}, link('#/agents', '← All agents'), ' · ', link(`#/playground/${enc}`, 'Chat with it in the playground')));
  body.append(h('h2', {}, 'Versions'), h('div', { class: 'panel' }, table([
    { label: 'Version', num: true, cell: (v) => v.versionNumber },
    { label: 'Created', cell: (v) => when(v.createdAt) },
    { label: 'By', cell: (v) => v.createdBy },
    { label: 'Current', cell: (v) => (v.isCurrent ? 'yes' : '') },
  ], versions)));
  const pickVersion = (name, index) => h('select', { name, 'aria-label': name },
    versions.map((v, i) => h('option', { value: String(i), selected: i === index }, `v${v.versionNumber}`)));
  const older = pickVersion('from', Math.min(1, versions.length - 1));
  const newer = pickVersion('to', 0);
  const out = h('div', { class: 'diff', id: 'version-diff' });
  const show = () => {
    clear(out);
    const a = versions[Number(older.value)];
    const b = versions[Number(newer.value)];
    out.append(diffLines(JSON.stringify(a.spec || a.snapshot, null, 2), JSON.stringify(b.spec || b.snapshot, null, 2)));
  };
  older.addEventListener('change', show);
  newer.addEventListener('change', show);
  body.append(h('h2', {}, 'Compare versions'), h('div', { class: 'panel' }, h('div', { class: 'row' },
    h('label', {}, 'From', older), h('label', {}, 'To', newer)), out));
  show();
  body.append(h('h2', {}, `Threads using it (${num(threads.total)})`), h('div', { class: 'panel' },
    threadTable(threads.threads, 'No thread uses this agent yet.')));
}

/** A line diff (longest common subsequence) of two texts: removed lines red, added green. */
function diffLines(from, to) {
  const a = from.split('\n');
  const b = to.split('\n');
  const n = a.length;
  const m = b.length;
  const lcs = Array.from({ length: n + 1 }, () => new Uint16Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
  }
  const out = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) { out.push(h('span', {}, '  ' + a[i] + '\n')); i++; j++; }
    else if (j < m && (i === n || lcs[i][j + 1] >= lcs[i + 1][j])) { out.push(h('span', { class: 'add' }, '+ ' + b[j])); j++; }
    else { out.push(h('span', { class: 'del' }, '- ' + a[i])); i++; }
  }
  if (from === to) out.unshift(h('p', { class: 'muted' }, 'The two versions are the same.'));
  return out;
}

// ---------------------------------------------------------------- threads

function threadTable(threads, empty) {
  return table([
    { label: 'Title', cell: (t) => link(`#/threads/${t.id}`, t.title || t.id) },
    { label: 'Agent', cell: (t) => t.agentId },
    { label: 'User', cell: (t) => t.userId },
    { label: 'Status', cell: (t) => status(t.status) },
    { label: 'Updated', cell: (t) => when(t.updatedAt) },
  ], threads, { empty });
}

async function threadsPage(body, args, current) {
  if (args[0]) return threadPage(body, args[0], current);
  body.append(h('h1', {}, 'Threads'));
  const params = new URLSearchParams(location.hash.split('?')[1] || '');
  const search = h('input', { type: 'search', name: 'q', value: params.get('q') || '', placeholder: 'Title or thread id', 'aria-label': 'Search threads' });
  const agent = h('input', { name: 'agentId', value: params.get('agentId') || '', placeholder: 'any', 'aria-label': 'Agent id' });
  const user = h('input', { name: 'userId', value: params.get('userId') || '', placeholder: 'any', 'aria-label': 'User id' });
  const archived = h('select', { name: 'archived', 'aria-label': 'Archived' },
    [['', 'Active'], ['true', 'All'], ['only', 'Archived']].map(([v, l]) => h('option', { value: v, selected: (params.get('archived') || '') === v }, l)));
  const offset = Number(params.get('offset') || 0);
  const go = (extra = {}) => {
    const next = q({ q: search.value.trim(), agentId: agent.value.trim(), userId: user.value.trim(), archived: archived.value, ...extra });
    location.hash = '#/threads' + next;
  };
  body.append(h('form', { class: 'inline panel', role: 'search', onsubmit: (e) => { e.preventDefault(); go(); } },
    h('label', {}, 'Search', search), h('label', {}, 'Agent', agent), h('label', {}, 'User', user),
    h('label', {}, 'Show', archived), h('button', { type: 'submit', class: 'primary' }, 'Filter')));
  const limit = 50;
  const data = await api('/threads' + q({ q: params.get('q'), agentId: params.get('agentId'), userId: params.get('userId'), archived: params.get('archived'), limit, offset }));
  if (!current()) return;
  body.append(h('div', { class: 'panel' }, threadTable(data.threads, 'No thread matches. Start one in the playground.'),
    h('div', { class: 'pager' },
      h('span', { class: 'muted' }, data.total ? `${offset + 1}–${offset + data.threads.length} of ${num(data.total)}` : ''),
      offset > 0 ? button('Previous', () => go({ offset: Math.max(0, offset - limit) || undefined })) : null,
      offset + limit < data.total ? button('Next', () => go({ offset: offset + limit })) : null)));
}

async function threadPage(body, id, current) {
  const enc = encodeURIComponent(id);
  const [thread, trace, artifacts, unfinished] = await Promise.all([
    api(`/threads/${enc}`), api(`/monitoring/trace/${enc}`), api(`/threads/${enc}/artifacts`),
    api('/turns' + q({ threadId: id, limit: 5 })),
  ]);
  if (!current()) return;
  body.append(h('h1', {}, thread.title || 'Untitled thread'),
    h('p', { class: 'muted' }, h('code', {}, thread.id), ' · agent ', link(`#/agents/${encodeURIComponent(thread.agentId)}`, thread.agentId),
      ' · user ', thread.userId, ' · ', status(thread.status), ' · started ', when(thread.createdAt)),
    h('p', {}, link('#/threads', '← All threads'), ' · ', link(`#/playground/${encodeURIComponent(thread.agentId)}/${enc}`, 'Continue in the playground')));
  const r = trace.rollup || {};
  body.append(h('div', { class: 'cards' }, [
    ['Turns', num(r.totalTurns)], ['Messages', num(r.totalMessages)], ['Tool calls', num(r.toolCallCount)],
    ['Tokens in / out', `${num(r.totalInputTokens)} / ${num(r.totalOutputTokens)}`], ['Cost', money(r.totalCostCents)],
  ].map(([label, value]) => h('div', { class: 'card' }, h('div', { class: 'label' }, label), h('div', { class: 'value' }, value)))));
  const running = unfinished.turns.find((t) => ['queued', 'running', 'waiting'].includes(t.status));
  if (running) body.append(liveTurn(id, current));
  body.append(h('h2', {}, 'Messages'), h('div', { class: 'panel messages', id: 'messages' },
    trace.messages.length ? trace.messages.map(messageView) : h('p', { class: 'empty' }, 'No message yet.')));
  if (artifacts.artifacts.length) {
    body.append(h('h2', {}, 'Artifacts'), h('div', { class: 'panel' }, artifacts.artifacts.map(artifactView)));
  }
  body.append(h('h2', {}, 'Turns and their traces'), h('div', { class: 'panel', id: 'traces' }, waterfalls(trace.spans || [])));
}

function messageView(m) {
  return h('div', { class: `msg ${m.role}`, 'data-role': m.role },
    h('div', { class: 'who' }, m.role, ' · ', when(m.createdAt)),
    h('div', { class: 'text' }, m.content || ''),
    (m.toolCalls || []).map((c) => h('div', { class: 'tool' },
      h('div', {}, h('strong', {}, c.name), c.isError ? h('span', { class: 'error' }, ' failed') : null),
      h('details', {}, h('summary', {}, 'arguments and result'), json(c.arguments), json(c.result)))),
    (m.contents || []).map(contentView));
}

/** A content item a turn produced: a table, a chart (drawn as bars of its first series), or JSON. */
function contentView(item) {
  const data = item.content || {};
  if (item.contentType === 'table' && Array.isArray(data.tableData)) {
    const columns = (data.tableColumns || []).map((c) => c.key || c.column_name);
    return h('div', { class: 'content-item', 'data-content': 'table' },
      data.sql_query ? h('p', { class: 'muted' }, h('code', {}, data.sql_query)) : null,
      table(columns.map((key) => ({ label: key, cell: (row) => (row[key] === null || row[key] === undefined ? '' : String(row[key])) })),
        data.tableData.slice(0, 200), { empty: 'No rows.' }));
  }
  if (item.contentType === 'chart' && data.chartConfig && Array.isArray(data.chartData)) {
    const config = data.chartConfig;
    const x = config.x_axis?.key;
    const y = config.y_axes?.[0]?.key;
    return h('div', { class: 'content-item chart', 'data-content': 'chart' },
      h('h3', {}, config.chart_title || 'Chart', ' ', h('span', { class: 'muted' }, `${config.chart_type || item.uiContentType} · ${y} by ${x}`)),
      barChart(data.chartData.slice(0, 50).map((row) => [String(row[x]), Number(row[y]) || 0]), (v) => num(v)));
  }
  return h('div', { class: 'content-item' }, json(data));
}

function artifactView(a) {
  const title = h('h3', {}, a.title || a.artifactKey || a.id, ' ', h('span', { class: 'muted' }, `${a.kind} · revision ${a.revision}`));
  const content = a.content ?? '';
  if (a.kind === 'html') {
    // Sanitised by the server; shown without scripts, forms or same-origin access.
    return h('div', {}, title, h('iframe', { class: 'artifact', sandbox: '', srcdoc: content, title: a.title || 'artifact' }));
  }
  if (a.kind === 'svg') {
    return h('div', {}, title, h('img', { alt: a.title || 'SVG artifact', src: 'data:image/svg+xml;charset=utf-8,' + encodeURIComponent(content) }));
  }
  return h('div', {}, title, h('pre', {}, content));
}

/** One waterfall per turn: each span as a bar on the turn's time axis, with tokens and cost. */
function waterfalls(spans) {
  if (!spans.length) return h('p', { class: 'empty' }, 'No trace recorded for this thread yet.');
  const byTurn = new Map();
  for (const span of spans) {
    const key = span.turnId || span.traceId;
    if (!byTurn.has(key)) byTurn.set(key, []);
    byTurn.get(key).push(span);
  }
  const nanos = (t) => BigInt(t || '0');
  return [...byTurn.entries()].map(([turnId, list]) => {
    list.sort((x, y) => (nanos(x.startTimeUnixNano) < nanos(y.startTimeUnixNano) ? -1 : 1));
    const start = list.reduce((min, sp) => (nanos(sp.startTimeUnixNano) < min ? nanos(sp.startTimeUnixNano) : min), nanos(list[0].startTimeUnixNano));
    const end = list.reduce((max, sp) => (nanos(sp.endTimeUnixNano) > max ? nanos(sp.endTimeUnixNano) : max), 0n);
    const total = Number(end - start) || 1;
    const depth = new Map();
    const ids = new Map(list.map((sp) => [sp.spanId, sp]));
    const level = (sp) => {
      if (depth.has(sp.spanId)) return depth.get(sp.spanId);
      const parent = sp.parentSpanId && ids.get(sp.parentSpanId);
      const d = parent ? level(parent) + 1 : 0;
      depth.set(sp.spanId, d);
      return d;
    };
    return h('div', { class: 'waterfall', 'data-turn': turnId },
      h('h3', {}, 'Turn ', h('code', {}, turnId), ' ', h('span', { class: 'muted' }, ms(total / 1e6))),
      list.map((sp) => {
        const at = attrs(sp);
        const left = (Number(nanos(sp.startTimeUnixNano) - start) / total) * 100;
        const width = Math.max((Number(nanos(sp.endTimeUnixNano) - nanos(sp.startTimeUnixNano)) / total) * 100, 0.3);
        const tokens = at['gen_ai.usage.input_tokens'] !== undefined ? `${at['gen_ai.usage.input_tokens']}→${at['gen_ai.usage.output_tokens']} tok` : '';
        const cost = at['agentry.cost_micro_cents'] ? money(at['agentry.cost_micro_cents'] / 1e6) : '';
        const kind = sp.status === 'error' ? 'error' : sp.name.startsWith('execute_tool') ? 'tool' : '';
        return h('div', { class: 'bar-row', title: sp.errorMessage || sp.name },
          h('div', { class: 'name', style: `padding-left:${level(sp) * 0.8}rem` }, sp.name),
          h('div', { class: 'track' }, h('div', { class: `bar ${kind}`, style: `left:${left}%;width:${width}%` })),
          h('div', { class: 'muted' }, [ms(sp.durationMs), tokens, cost].filter(Boolean).join(' · ')));
      }));
  });
}

const attrs = (span) => span.attributes || {};

/** Follows the thread's unfinished turn (the SSE lane resumed from its start) until it ends. */
function liveTurn(threadId, current) {
  const text = h('div', { class: 'text' });
  const state = h('div', { class: 'who' }, 'A turn is running…');
  const box = h('div', { class: 'panel', id: 'live-turn' }, h('h2', {}, 'Live'), h('div', { class: 'msg assistant' }, state, text));
  const controller = new AbortController();
  liveHandlers.add(() => { if (!current()) controller.abort(); });
  streamTurn(`/threads/${encodeURIComponent(threadId)}/stream`, {}, { 'last-event-id': '0' }, controller.signal, (event) => {
    if (!current()) { controller.abort(); return; }
    if (event.type === 'token') text.append(event.text);
    if (event.type === 'status') state.textContent = `The turn is ${event.status}…`;
    if (event.type === 'approval_needed') state.textContent = 'Waiting for an approval (see Approvals).';
    if (event.type === 'done') { state.textContent = `Finished: ${event.status}`; setTimeout(() => current() && render(), 300); }
  }).catch((err) => { if (err.name !== 'AbortError') state.textContent = err.message; });
  return box;
}

/** POSTs to an SSE lane and calls `onEvent` with each event until the stream ends. */
async function streamTurn(path, body, headers, signal, onEvent) {
  const res = await fetch(API + path, {
    method: 'POST', signal, credentials: 'same-origin',
    headers: { 'content-type': 'application/json', 'x-csrf-token': session.csrfToken, accept: 'text/event-stream', ...headers },
    body: JSON.stringify(body),
  });
  if (!res.ok) {
    let data = null;
    try { data = await res.json(); } catch { data = null; }
    throw new HttpError(res.status, data, `${res.status} ${res.statusText}`);
  }
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, '\n');
    let cut;
    while ((cut = buffer.indexOf('\n\n')) >= 0) {
      const frame = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = frame.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, '')).join('\n');
      if (!data) continue;
      let event = null;
      try { event = JSON.parse(data); } catch { continue; }
      if (event.type === 'heartbeat') continue;
      onEvent(event);
      if (event.type === 'done') { reader.cancel().catch(() => {}); return; }
    }
  }
}

// ---------------------------------------------------------------- playground

async function playgroundPage(body, args, current) {
  body.append(h('h1', {}, 'Playground'));
  const { agents } = await api('/agents');
  if (!current()) return;
  if (!agents.length) { body.append(h('p', { class: 'empty' }, 'No agent to talk to: apply an agent file first.')); return; }
  const agentId = args[0] || agents[0].id;
  let threadId = args[1] || null;
  const select = h('select', { name: 'agent', 'aria-label': 'Agent', onchange: () => { location.hash = `#/playground/${encodeURIComponent(select.value)}`; } },
    agents.map((a) => h('option', { value: a.id, selected: a.id === agentId }, `${a.name} (${a.id})`)));
  const log = h('div', { class: 'messages panel', id: 'chat', 'aria-live': 'polite' });
  const input = h('textarea', { name: 'message', 'aria-label': 'Message', placeholder: 'Write a message; Ctrl+Enter sends', rows: 3 });
  const send = h('button', { type: 'submit', class: 'primary' }, 'Send');
  const threadInfo = h('span', { class: 'muted', id: 'playground-thread' });
  const showThread = () => {
    clear(threadInfo);
    if (threadId) threadInfo.append('Thread ', link(`#/threads/${threadId}`, threadId));
  };
  body.append(h('div', { class: 'row' }, h('label', {}, 'Agent', select),
    button('New thread', async () => { threadId = null; clear(log); showThread(); }), threadInfo), log);
  if (threadId) {
    const { messages } = await api(`/threads/${encodeURIComponent(threadId)}/messages` + q({ limit: 200 }));
    if (!current()) return;
    log.append(...messages.map(messageView));
  }
  showThread();
  const form = h('form', { class: 'panel', onsubmit: async (e) => {
    e.preventDefault();
    const message = input.value.trim();
    if (!message) return;
    send.disabled = true;
    try {
      if (!threadId) {
        const thread = await api('/threads', { method: 'POST', body: { agentId, title: message.slice(0, 60) } });
        threadId = thread.id;
        showThread();
      }
      input.value = '';
      log.append(h('div', { class: 'msg user', 'data-role': 'user' }, h('div', { class: 'who' }, 'you'), h('div', { class: 'text' }, message)));
      await chatTurn(log, threadId, message, current);
    } catch (err) {
      log.append(errorBox(err));
    } finally { send.disabled = false; input.focus(); }
  } }, input, h('div', { class: 'row' }, send));
  input.addEventListener('keydown', (e) => { if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) form.requestSubmit(); });
  body.append(form);
  input.focus();
}

async function chatTurn(log, threadId, message, current) {
  const text = h('div', { class: 'text' });
  const who = h('div', { class: 'who' }, 'assistant');
  const bubble = h('div', { class: 'msg assistant', 'data-role': 'assistant' }, who, text);
  log.append(bubble);
  let target = text;
  await streamTurn(`/threads/${encodeURIComponent(threadId)}/stream`, { message }, {}, undefined, (event) => {
    if (!current()) return;
    switch (event.type) {
      case 'token': target.append(event.text); break;
      case 'status': who.textContent = `assistant · ${event.status}`; break;
      case 'tool_call': bubble.append(h('div', { class: 'tool' }, h('strong', {}, event.name), ' ', h('code', {}, JSON.stringify(event.params)))); break;
      case 'tool_result': bubble.append(h('div', { class: 'tool' }, h('span', { class: 'muted' }, `${event.name} → `), h('code', {}, JSON.stringify(event.result).slice(0, 500)))); break;
      case 'message_boundary': target = h('div', { class: 'text' }); bubble.append(target); break;
      case 'approval_needed': bubble.append(inlineApproval(event)); break;
      case 'approval_resolved': bubble.append(h('div', { class: 'muted' }, `Approval ${event.status}`)); break;
      case 'error': bubble.append(h('div', { class: 'error', 'data-error': event.code }, `${event.code}: ${event.message}`)); break;
      case 'done': who.textContent = `assistant · ${event.status}`; bubble.dataset.status = event.status; break;
      default: break;
    }
  });
}

function inlineApproval(event) {
  const comment = h('input', { name: 'comment', placeholder: 'Comment (optional)', 'aria-label': 'Comment' });
  const box = h('div', { class: 'approval-box', 'data-approval': event.approvalId },
    h('strong', {}, 'Approval needed: '), event.action, json(event.details));
  const decide = (approved) => async () => {
    await api(`/approvals/${encodeURIComponent(event.approvalId)}/resolve`, { method: 'POST', body: { approved, comment: comment.value || undefined } });
    clear(box);
    box.append(approved ? 'Approved.' : 'Rejected.');
  };
  box.append(h('div', { class: 'row' }, comment, button('Approve', decide(true), 'primary'), button('Reject', decide(false), 'danger')));
  return box;
}

// ---------------------------------------------------------------- approvals

async function approvalsPage(body, _args, current) {
  body.append(h('h1', {}, 'Approvals'));
  const params = new URLSearchParams(location.hash.split('?')[1] || '');
  const which = params.get('status') || 'pending';
  const filter = h('select', { 'aria-label': 'Status', onchange: () => { location.hash = '#/approvals' + q({ status: filter.value }); } },
    ['pending', 'approved', 'rejected', 'timed_out', 'all'].map((v) => h('option', { value: v, selected: v === which }, v)));
  const list = h('div', { id: 'approvals' });
  body.append(h('div', { class: 'row' }, h('label', {}, 'Show', filter)), list);
  const load = async () => {
    const data = await api('/monitoring/approvals' + q({ status: which === 'all' ? undefined : which, limit: 100 }));
    if (!current()) return;
    clear(list);
    if (!data.approvals.length) {
      list.append(h('p', { class: 'empty' }, which === 'pending' ? 'No approval is waiting. New ones appear here as turns ask.' : 'None.'));
      return;
    }
    list.append(...data.approvals.map((a) => approvalCard(a, load)));
  };
  await load();
  liveHandlers.add((kind) => { if (kind === 'approval' && current()) load(); });
}

function approvalCard(a, reload) {
  const pending = a.status === 'pending';
  const card = h('div', { class: 'panel approval', 'data-approval': a.id },
    h('div', { class: 'row' }, status(a.status), h('strong', {}, a.question || a.action)),
    h('p', { class: 'muted' }, 'agent ', a.agentId, ' · tool ', a.toolName, ' · thread ', link(`#/threads/${a.threadId}`, a.threadId),
      ' · asked ', when(a.createdAt), pending ? [' · times out ', when(a.timeoutAt)] : [' · by ', a.respondedBy || '—', ' ', when(a.resolvedAt)]),
    a.comment ? h('p', {}, 'Comment: ', a.comment) : null,
    h('details', { open: pending }, h('summary', {}, 'Arguments'), json(a.args)));
  if (!pending) return card;
  const comment = h('input', { name: 'comment', placeholder: 'Comment (optional)', 'aria-label': 'Comment' });
  const edited = h('textarea', { name: 'editedArgs', 'aria-label': 'Edited arguments', rows: 4 }, JSON.stringify(a.args, null, 2));
  const resolve = (approved) => async () => {
    const resolution = { approved, comment: comment.value || undefined };
    if (approved) {
      let args;
      try { args = JSON.parse(edited.value); } catch { throw new Error('The edited arguments are not JSON.'); }
      if (JSON.stringify(args) !== JSON.stringify(a.args)) resolution.editedArgs = args;
    }
    await api(`/approvals/${encodeURIComponent(a.id)}/resolve`, { method: 'POST', body: resolution });
    toast(approved ? 'Approved.' : 'Rejected.');
    await reload();
    refreshBadge();
  };
  card.append(h('details', {}, h('summary', {}, 'Edit the arguments before approving'), edited),
    h('div', { class: 'row' }, comment, button('Approve', resolve(true), 'primary'), button('Reject', resolve(false), 'danger')));
  return card;
}

// ---------------------------------------------------------------- budgets

async function budgetsPage(body, _args, current) {
  body.append(h('h1', {}, 'Budgets'));
  const data = await api('/budgets/status');
  const { caps } = await api('/budgets');
  if (!current()) return;
  const statusById = new Map(data.caps.map((c) => [c.cap.id, c]));
  const rows = caps.map((cap) => ({ cap, st: statusById.get(cap.id) }));
  body.append(h('div', { class: 'panel', id: 'caps' }, table([
    { label: 'Applies to', cell: (r) => r.cap.scopeType === 'scope' ? 'the whole scope' : `${r.cap.scopeType} ${r.cap.targetId}` },
    { label: 'Period', cell: (r) => r.cap.period },
    { label: 'Spent', cell: (r) => progress(r) },
    { label: 'Turns', num: true, cell: (r) => (r.cap.turnsLimit ? `${num(r.st?.turns)} / ${num(r.cap.turnsLimit)}` : num(r.st?.turns)) },
    { label: 'State', cell: (r) => capState(r) },
    { label: '', cell: (r) => capActions(r.cap) },
  ], rows, { empty: 'No budget cap yet. Create one below to limit what a scope, an agent or a user may spend.' })));
  body.append(h('h2', {}, 'New cap'), capForm(null));
}

function progress({ cap, st }) {
  const spent = st ? st.spentCents : 0;
  const pct = cap.limitCents > 0 ? Math.min(100, (spent / cap.limitCents) * 100) : 100;
  return h('div', {}, h('div', { class: 'progress' + (pct >= 100 ? ' over' : ''), role: 'progressbar', 'aria-valuenow': Math.round(pct), 'aria-valuemin': 0, 'aria-valuemax': 100 },
    h('span', { style: `width:${pct}%` })), h('span', { class: 'muted' }, `${money(spent)} of ${money(cap.limitCents)}`));
}

function capState({ cap, st }) {
  if (!cap.enabled) return status('disabled');
  if (st?.overrideActive) return h('span', {}, status('overridden'), ' until ', when(cap.overrideUntil));
  return st?.blocked ? status('blocked') : status('ok');
}

function capActions(cap) {
  const minutes = h('input', { type: 'number', min: 1, max: 1440, value: 30, 'aria-label': 'Override minutes', style: 'width:5rem' });
  const edit = h('div', { hidden: true }, capForm(cap));
  return h('div', {}, h('div', { class: 'row' },
    button('Edit', async () => { edit.hidden = !edit.hidden; }),
    minutes, button('Override', async () => {
      await api(`/budgets/${cap.id}/override`, { method: 'POST', body: { minutes: Number(minutes.value) } });
      toast(`Cap overridden for ${minutes.value} minutes.`); render();
    }),
    button('Delete', async () => {
      if (!confirm('Delete this budget cap?')) return;
      await api(`/budgets/${cap.id}`, { method: 'DELETE' });
      toast('Cap deleted.'); render();
    }, 'danger')), edit);
}

function capForm(cap) {
  const scopeType = h('select', { name: 'scopeType', 'aria-label': 'Applies to' },
    [['scope', 'The whole scope'], ['agent', 'An agent'], ['user', 'A user']].map(([v, l]) => h('option', { value: v, selected: cap?.scopeType === v }, l)));
  const target = h('input', { name: 'targetId', value: cap?.targetId || '', placeholder: 'agent or user id', 'aria-label': 'Agent or user id' });
  const period = h('select', { name: 'period', 'aria-label': 'Period' },
    ['hour', 'day', 'week', 'month'].map((v) => h('option', { value: v, selected: (cap?.period || 'day') === v }, v)));
  const limit = h('input', { name: 'limitCents', type: 'number', step: 'any', min: 0, value: cap ? cap.limitCents : '', required: true, 'aria-label': 'Limit in cents' });
  const turns = h('input', { name: 'turnsLimit', type: 'number', min: 1, value: cap?.turnsLimit ?? '', 'aria-label': 'Turn limit' });
  const enabled = h('input', { name: 'enabled', type: 'checkbox', checked: cap ? cap.enabled : true });
  const problem = h('p', { class: 'error', role: 'alert' });
  return h('form', { class: 'panel inline cap-form', onsubmit: async (e) => {
    e.preventDefault();
    problem.textContent = '';
    const bodyOut = {
      scopeType: scopeType.value, targetId: scopeType.value === 'scope' ? undefined : target.value.trim(),
      period: period.value, limitCents: Number(limit.value), enabled: enabled.checked,
      turnsLimit: turns.value ? Number(turns.value) : undefined,
      alertThresholds: cap?.alertThresholds, alertWebhookUrl: cap?.alertWebhookUrl || undefined,
    };
    try {
      await api(cap ? `/budgets/${cap.id}` : '/budgets', { method: cap ? 'PUT' : 'POST', body: bodyOut });
      toast(cap ? 'Cap saved.' : 'Cap created.');
      render();
    } catch (err) {
      problem.textContent = [err.message, ...((err.data && err.data.validationErrors) || [])].filter((v, i, all) => all.indexOf(v) === i).join(' · ');
    }
  } },
  h('label', {}, 'Applies to', scopeType), h('label', {}, 'Agent or user', target), h('label', {}, 'Period', period),
  h('label', {}, 'Limit (cents)', limit), h('label', {}, 'Turn limit', turns), h('label', {}, 'Enabled', enabled),
  h('button', { type: 'submit', class: 'primary' }, cap ? 'Save' : 'Create cap'), problem);
}

// ---------------------------------------------------------------- cost

async function costPage(body, _args, current) {
  body.append(h('h1', {}, 'Cost'));
  const params = new URLSearchParams(location.hash.split('?')[1] || '');
  const days = Number(params.get('days') || 30);
  body.append(h('div', { class: 'row' }, h('label', {}, 'Over the last', h('select', { 'aria-label': 'Days', onchange: (e) => { location.hash = '#/cost' + q({ days: e.target.value }); } },
    [1, 7, 30, 90].map((d) => h('option', { value: d, selected: d === days }, `${d} day${d > 1 ? 's' : ''}`))))));
  const [byDay, byAgent, byModel, byUser] = await Promise.all([
    api('/monitoring/cost' + q({ daysBack: days })), api('/monitoring/cost/by-agent' + q({ days })),
    api('/monitoring/cost/by-model' + q({ days })), api('/monitoring/cost/by-user' + q({ days })),
  ]);
  if (!current()) return;
  body.append(h('div', { class: 'cards' },
    [['Cost', money(byDay.costCents)], ['Turns', num(byDay.turns)], ['Tokens', num(byDay.totalTokens)]]
      .map(([label, value]) => h('div', { class: 'card' }, h('div', { class: 'label' }, label), h('div', { class: 'value' }, value)))));
  for (const [title, data, key] of [['By day', byDay, 'day'], ['By agent', byAgent, 'agentId'], ['By model', byModel, 'model'], ['By user', byUser, 'userId']]) {
    const rows = data.rows || [];
    body.append(h('h2', {}, title), h('div', { class: 'panel chart', 'data-rollup': key },
      rows.length ? barChart(rows.map((r) => [String(r[key]), r.costCents])) : null,
      table([
        { label: key === 'day' ? 'Day' : key === 'agentId' ? 'Agent' : key === 'model' ? 'Model' : 'User', cell: (r) => r[key] },
        { label: 'Turns', num: true, cell: (r) => num(r.turns) },
        { label: 'Model calls', num: true, cell: (r) => num(r.modelCalls) },
        { label: 'Tokens in', num: true, cell: (r) => num(r.inputTokens) },
        { label: 'Tokens out', num: true, cell: (r) => num(r.outputTokens) },
        { label: 'Cost', num: true, cell: (r) => money(r.costCents) },
      ], rows, { empty: 'No model call in this period.' })));
  }
}

/** Horizontal bars with their labels and values (shown with `format`), in SVG. */
function barChart(points, format = money) {
  const max = Math.max(...points.map(([, v]) => Number(v) || 0), 0) || 1;
  const rowHeight = 18;
  const height = points.length * rowHeight + 4;
  return s('svg', { viewBox: `0 0 600 ${height}`, role: 'img', 'aria-label': 'Cost chart' },
    points.map(([label, value], i) => {
      const y = i * rowHeight + 2;
      const width = ((Number(value) || 0) / max) * 380;
      return s('g', {}, s('text', { x: 0, y: y + 12 }, label.length > 24 ? label.slice(0, 23) + '…' : label),
        s('rect', { x: 160, y, width: Math.max(width, 1), height: rowHeight - 5, rx: 2 }),
        s('text', { x: 165 + width, y: y + 12 }, format(value)));
    }));
}

// ---------------------------------------------------------------- jobs

async function jobsPage(body, args, current) {
  if (args[0] === 'run' && args[1]) return runPage(body, args[1], current);
  body.append(h('h1', {}, 'Jobs'));
  const params = new URLSearchParams(location.hash.split('?')[1] || '');
  const st = params.get('status') || '';
  const task = params.get('taskId') || '';
  const statusSelect = h('select', { name: 'status', 'aria-label': 'Run status' }, ['', 'QUEUED', 'DELAYED', 'EXECUTING', 'WAITING', 'COMPLETED', 'FAILED', 'CANCELED', 'CRASHED', 'EXPIRED', 'SYSTEM_FAILURE']
    .map((v) => h('option', { value: v, selected: v === st }, v || 'any')));
  const taskInput = h('input', { name: 'taskId', value: task, placeholder: 'any', 'aria-label': 'Task' });
  const batchInput = h('input', { name: 'batchId', placeholder: 'batch_…', 'aria-label': 'Batch id' });
  const [tasks, runs, schedules] = await Promise.all([
    api('/trigger/tasks'), api('/trigger/runs' + q({ status: st, taskId: task, limit: 100 })), api('/trigger/schedules'),
  ]);
  if (!current()) return;
  body.append(h('h2', {}, 'Runs'), h('form', { class: 'inline', onsubmit: (e) => { e.preventDefault(); location.hash = '#/jobs' + q({ status: statusSelect.value, taskId: taskInput.value.trim() }); } },
    h('label', {}, 'Status', statusSelect), h('label', {}, 'Task', taskInput), h('button', { type: 'submit' }, 'Filter')),
  h('div', { class: 'panel', id: 'runs' }, runTable(runs.runs)));
  body.append(h('h2', {}, 'Tasks'), h('div', { class: 'panel' }, table([
    { label: 'Task', cell: (t) => h('code', {}, t.id) },
    { label: 'Kind', cell: (t) => t.kind },
    { label: 'Attempts', num: true, cell: (t) => t.maxAttempts },
    { label: 'Concurrency', num: true, cell: (t) => t.concurrencyLimit ?? '—' },
    { label: '', cell: (t) => button('Trigger', async () => {
      const run = await api(`/trigger/tasks/${encodeURIComponent(t.id)}/trigger`, { method: 'POST', body: { payload: {} } });
      location.hash = `#/jobs/run/${run.id}`;
    }) },
  ], tasks.tasks, { empty: 'No task yet: declare tasks in files and load them with `serve --tasks DIR`.' })));
  const viewerZone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  body.append(h('h2', {}, 'Schedules'), h('div', { class: 'panel', id: 'schedules' }, table([
    { label: 'Task', cell: (sc) => sc.taskId },
    { label: 'Cron', cell: (sc) => h('code', {}, sc.cron) },
    { label: 'Zone', cell: (sc) => sc.timezone },
    { label: `Next run (its zone)`, cell: (sc) => (sc.nextRunAt ? inZone(sc.nextRunAt, sc.timezone) : '—') },
    { label: `Next run (${viewerZone})`, cell: (sc) => when(sc.nextRunAt) },
    { label: 'Active', cell: (sc) => status(sc.active ? 'active' : 'inactive') },
    { label: '', cell: (sc) => button(sc.active ? 'Deactivate' : 'Activate', async () => {
      await api(`/trigger/schedules/${sc.id}/${sc.active ? 'deactivate' : 'activate'}`, { method: 'POST', body: {} });
      render();
    }) },
  ], schedules.schedules, { empty: 'No schedule. Add `[[schedules]]` to a task file, or create one with `agentry schedules create`.' })));
  const batchOut = h('div', {});
  body.append(h('h2', {}, 'Batches'), h('form', { class: 'inline panel', onsubmit: async (e) => {
    e.preventDefault();
    clear(batchOut);
    try {
      const batch = await api(`/trigger/batches/${encodeURIComponent(batchInput.value.trim())}`);
      batchOut.append(h('p', {}, `Batch ${batch.id}: ${num((batch.runs || []).length)} runs`), runTable(batch.runs || []));
    } catch (err) { batchOut.append(errorBox(err)); }
  } }, h('label', {}, 'Batch', batchInput), h('button', { type: 'submit' }, 'Show')), batchOut);
  liveHandlers.add((kind) => { if (kind === 'run' && current()) refreshRuns(st, task, current); });
}

async function refreshRuns(st, task, current) {
  const runs = await api('/trigger/runs' + q({ status: st, taskId: task, limit: 100 }));
  const box = document.getElementById('runs');
  if (!current() || !box) return;
  clear(box);
  box.append(runTable(runs.runs));
}

function inZone(iso, zone) {
  try {
    return new Date(iso).toLocaleString(undefined, { timeZone: zone, dateStyle: 'medium', timeStyle: 'short' });
  } catch { return iso; }
}

function runTable(runs) {
  return table([
    { label: 'Run', cell: (r) => link(`#/jobs/run/${r.id}`, r.id) },
    { label: 'Task', cell: (r) => r.taskId },
    { label: 'Status', cell: (r) => status(r.status) },
    { label: 'Attempts', num: true, cell: (r) => `${r.attemptCount}/${r.maxAttempts}` },
    { label: 'Created', cell: (r) => when(r.createdAt) },
    { label: 'Finished', cell: (r) => when(r.finishedAt) },
  ], runs, { empty: 'No run matches. Trigger a task to see its runs here.' });
}

async function runPage(body, id, current) {
  const run = await api(`/trigger/runs/${encodeURIComponent(id)}`);
  if (!current()) return;
  body.append(h('h1', {}, 'Run ', h('code', {}, run.id)), h('p', {}, link('#/jobs', '← Jobs')),
    h('p', {}, 'Task ', h('code', {}, run.taskId), ' · ', h('span', { id: 'run-status' }, status(run.status)), ' · created ', when(run.createdAt),
      run.threadId ? [' · thread ', link(`#/threads/${run.threadId}`, run.threadId)] : null));
  body.append(h('div', { class: 'row' },
    run.isFinished ? null : button('Cancel run', async () => { await api(`/trigger/runs/${run.id}/cancel`, { method: 'POST', body: {} }); toast('Cancel requested.'); render(); }, 'danger'),
    button('Replay', async () => {
      const replay = await api(`/trigger/runs/${run.id}/replay`, { method: 'POST', body: {} });
      location.hash = `#/jobs/run/${replay.id}`;
    })));
  body.append(h('h2', {}, 'Attempts'), h('div', { class: 'panel' }, table([
    { label: '#', num: true, cell: (a) => a.number },
    { label: 'Status', cell: (a) => status(a.status) },
    { label: 'Started', cell: (a) => when(a.startedAt) },
    { label: 'Finished', cell: (a) => when(a.finishedAt) },
    { label: 'Error', cell: (a) => a.error || '' },
    { label: 'Replica', cell: (a) => h('code', {}, a.replica || '') },
  ], run.attempts || [], { empty: 'Not started yet.' })));
  body.append(h('h2', {}, 'Payload'), json(run.payload), h('h2', {}, 'Output'), run.output === null ? h('p', { class: 'muted' }, 'None yet.') : json(run.output));
  if (run.error) body.append(h('h2', {}, 'Error'), h('pre', { class: 'error' }, typeof run.error === 'string' ? run.error : JSON.stringify(run.error, null, 2)));
  liveHandlers.add((kind, data) => { if (kind === 'run' && data.id === run.id && current()) render(); });
}

// ---------------------------------------------------------------- safety and tools

async function safetyPage(body, _args, current) {
  body.append(h('h1', {}, 'Safety events'));
  const data = await api('/monitoring/safety-events' + q({ limit: 200 }));
  if (!current()) return;
  body.append(h('div', { class: 'panel' }, table([
    { label: 'When', cell: (e) => when(e.createdAt || e.timestamp) },
    { label: 'Kind', cell: (e) => e.kind || e.type },
    { label: 'Direction', cell: (e) => e.direction || '' },
    { label: 'Action', cell: (e) => e.action || '' },
    { label: 'Thread', cell: (e) => (e.threadId ? link(`#/threads/${e.threadId}`, e.threadId) : '') },
    { label: 'Detail', cell: (e) => e.detail || e.piiType || e.injectionPattern || '' },
  ], data.events, { empty: 'No safety event. Agents with a `[safety]` policy record what their detectors find here.' })));
}

async function toolsPage(body, _args, current) {
  body.append(h('h1', {}, 'Tools'));
  const data = await api('/tools/matrix');
  if (!current()) return;
  body.append(h('div', { class: 'panel' }, table([
    { label: 'Tool', cell: (t) => h('code', {}, t.toolName) },
    { label: 'Owner', cell: (t) => t.entityId },
    { label: 'What it does', cell: (t) => t.description || '' },
    { label: 'Approval', cell: (t) => (t.requiresApproval ? 'required' : '') },
    { label: 'Calls', num: true, cell: (t) => num(t.health?.totalCalls) },
    { label: 'Failures', num: true, cell: (t) => num(t.health?.totalFailures) },
    { label: 'p95', num: true, cell: (t) => ms(t.health?.p95LatencyMs) },
    { label: 'Last', cell: (t) => (t.health?.lastStatus ? status(t.health.lastStatus) : '—') },
    { label: 'Enabled', cell: (t) => {
      const box = h('input', { type: 'checkbox', checked: t.enabled, 'aria-label': `Enable ${t.toolName}` });
      box.addEventListener('change', async () => {
        try {
          await api(`/tools/${encodeURIComponent(t.entityId)}/${encodeURIComponent(t.toolName)}/enabled`, { method: 'PATCH', body: { enabled: box.checked } });
          toast(`${t.toolName} ${box.checked ? 'enabled' : 'disabled'}.`);
        } catch (err) { box.checked = !box.checked; toast(err.message, true); }
      });
      return box;
    } },
  ], data.tools, { empty: 'No tool is declared.' })));
}

// ---------------------------------------------------------------- datasets (the Erdo surface)

const ERDO = '/dashboard/erdo';

async function datasetsPage(body, args, current) {
  if (args[0]) return datasetPage(body, args[0], current);
  body.append(h('h1', {}, 'Datasets'));
  const { datasets } = await request(`${ERDO}/datasets`);
  if (!current()) return;
  body.append(h('div', { class: 'panel' }, table([
    { label: 'Name', cell: (d) => link(`#/datasets/${encodeURIComponent(d.slug)}`, d.name || d.slug) },
    { label: 'Slug', cell: (d) => h('code', {}, d.slug) },
    { label: 'Rows', num: true, cell: (d) => num(d.rowCount) },
    { label: 'Columns', cell: (d) => (d.columns || []).map((c) => c.name || c).join(', ') },
    { label: 'Uploaded', cell: (d) => when(d.createdAt) },
  ], datasets, { empty: 'No dataset in this scope. Upload CSV or JSON with POST /datasets (the Erdo API).' })));
}

async function datasetPage(body, slug, current) {
  const enc = encodeURIComponent(slug);
  const dataset = await request(`${ERDO}/datasets/${enc}`);
  if (!current()) return;
  body.append(h('h1', {}, dataset.name || dataset.slug, ' ', h('code', { class: 'muted' }, dataset.slug)),
    h('p', {}, link('#/datasets', '← All datasets'), ' · ', `${num(dataset.rowCount)} rows`));
  body.append(h('h2', {}, 'Columns'), h('div', { class: 'panel' }, table([
    { label: 'Column', cell: (c) => h('code', {}, c.name || c) },
    { label: 'Type', cell: (c) => c.value_type || c.valueType || c.type || '' },
  ], dataset.columns || [])));
  const out = h('div', { class: 'panel', id: 'query-result' });
  const sql = h('textarea', { name: 'query', 'aria-label': 'SQL query', rows: 3 }, 'SELECT * FROM data LIMIT 50');
  const run = async () => {
    clear(out);
    try {
      const result = await request(`${ERDO}/datasets/${enc}/query`, { method: 'POST', body: { query: sql.value } });
      const rows = `${num(result.row_count)} row${result.row_count === 1 ? '' : 's'}`;
      out.append(h('p', { class: 'muted' }, `${rows}${result.truncated ? ' (more rows than shown)' : ''}`),
        table(result.columns.map((c, i) => ({ label: c, cell: (row) => (row[i] === null ? '' : String(row[i])) })), result.rows,
          { empty: 'The query returned no rows.' }));
    } catch (err) { out.append(errorBox(err)); }
  };
  body.append(h('h2', {}, 'Query'), h('form', { class: 'panel', onsubmit: (e) => { e.preventDefault(); run(); } },
    sql, h('p', { class: 'muted' }, 'Read-only SQL over the table `data` (at most 1,000 rows).'),
    h('button', { type: 'submit', class: 'primary' }, 'Run')), out);
  await run();
}

const VIEWS = {
  overview: overviewPage, agents: agentsPage, threads: threadsPage, playground: playgroundPage,
  approvals: approvalsPage, budgets: budgetsPage, cost: costPage, jobs: jobsPage, safety: safetyPage, tools: toolsPage,
  datasets: datasetsPage,
};

boot();
