// Agentry dashboard: the operations pages — overview, approvals, budgets, cost, jobs, safety
// events, tools.

import {
  api, q, h, clear, toast, when, money, num, ms, status, link, json, table, errorBox, button, refreshBadge, barChart, liveHandlers, shell,
} from './lib.js';

// ---------------------------------------------------------------- overview

export async function overviewPage(body, _args, current) {
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
  liveHandlers.add((kind) => { if (kind !== 'alert' && current()) shell.render(); });
}

// ---------------------------------------------------------------- approvals

export async function approvalsPage(body, _args, current) {
  body.append(h('h1', {}, 'Approvals'));
  const params = new URLSearchParams(location.hash.split('?')[1] || '');
  const which = params.get('status') || 'pending';
  const filter = h('select', { 'aria-label': 'Status', onchange: () => { location.hash = '#/approvals' + q({ status: filter.value }); } },
    ['pending', 'approved', 'rejected', 'timed_out', 'all'].map((v) => h('option', { value: v, selected: v === which }, v)));
  const list = h('div', { id: 'approvals' });
  body.append(h('div', { class: 'row' }, h('label', {}, 'Show', filter)), list);
  // A card is kept while its approval keeps its status, so a comment or an edit being typed
  // survives another approval arriving.
  let cards = new Map();
  let loads = 0; // an answer older than the last load started is dropped
  const load = async () => {
    const mine = ++loads;
    const data = await api('/monitoring/approvals' + q({ status: which === 'all' ? undefined : which, limit: 100 }));
    if (!current() || mine !== loads) return;
    if (!data.approvals.length) {
      cards = new Map();
      list.replaceChildren(h('p', { class: 'empty' }, which === 'pending' ? 'No approval is waiting. New ones appear here as turns ask.' : 'None.'));
      return;
    }
    const kept = cards;
    cards = new Map(data.approvals.map((a) => {
      const card = kept.get(a.id);
      return [a.id, card && card.status === a.status ? card : { status: a.status, node: approvalCard(a, load) }];
    }));
    const nodes = [...cards.values()].map((c) => c.node);
    if (nodes.length === list.children.length && nodes.every((n, i) => list.children[i] === n)) return;
    const focused = document.activeElement;
    list.replaceChildren(...nodes);
    if (focused && focused !== document.body && list.contains(focused)) focused.focus();
  };
  await load();
  liveHandlers.add((kind) => { if ((kind === 'approval' || kind === 'resync') && current()) load(); });
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

export async function budgetsPage(body, _args, current) {
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
      toast(`Cap overridden for ${minutes.value} minutes.`); shell.render();
    }),
    button('Delete', async () => {
      if (!confirm('Delete this budget cap?')) return;
      await api(`/budgets/${cap.id}`, { method: 'DELETE' });
      toast('Cap deleted.'); shell.render();
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
      shell.render();
    } catch (err) {
      problem.textContent = [err.message, ...((err.data && err.data.validationErrors) || [])].filter((v, i, all) => all.indexOf(v) === i).join(' · ');
    }
  } },
  h('label', {}, 'Applies to', scopeType), h('label', {}, 'Agent or user', target), h('label', {}, 'Period', period),
  h('label', {}, 'Limit (cents)', limit), h('label', {}, 'Turn limit', turns), h('label', {}, 'Enabled', enabled),
  h('button', { type: 'submit', class: 'primary' }, cap ? 'Save' : 'Create cap'), problem);
}

// ---------------------------------------------------------------- cost

export async function costPage(body, _args, current) {
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
// ---------------------------------------------------------------- jobs

export async function jobsPage(body, args, current) {
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
      shell.render();
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
  liveHandlers.add((kind) => { if ((kind === 'run' || kind === 'resync') && current()) refreshRuns(st, task, current); });
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
    run.isFinished ? null : button('Cancel run', async () => { await api(`/trigger/runs/${run.id}/cancel`, { method: 'POST', body: {} }); toast('Cancel requested.'); shell.render(); }, 'danger'),
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
  liveHandlers.add((kind, data) => { if ((kind === 'resync' || (kind === 'run' && data.id === run.id)) && current()) shell.render(); });
}

// ---------------------------------------------------------------- safety and tools

export async function safetyPage(body, _args, current) {
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

export async function toolsPage(body, _args, current) {
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

