// Agentry dashboard: the conversation pages — agents, threads (messages, artifacts, content
// items, trace waterfalls, a live turn), the playground, datasets.

import {
  request, api, q, h, clear, when, money, num, ms, status, link, json, table, errorBox, button, streamTurn, barChart, liveHandlers, shell,
} from './lib.js';

// ---------------------------------------------------------------- agents

export async function agentsPage(body, args, current) {
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

export async function threadsPage(body, args, current) {
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
    if (event.type === 'done') { state.textContent = `Finished: ${event.status}`; setTimeout(() => current() && shell.render(), 300); }
  }).catch((err) => { if (err.name !== 'AbortError') state.textContent = err.message; });
  return box;
}

/** POSTs to an SSE lane and calls `onEvent` with each event until the stream ends. */
// ---------------------------------------------------------------- playground

export async function playgroundPage(body, args, current) {
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

// ---------------------------------------------------------------- datasets (the Erdo surface)

const ERDO = '/dashboard/erdo';

export async function datasetsPage(body, args, current) {
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

