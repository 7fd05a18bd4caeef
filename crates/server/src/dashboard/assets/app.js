// Agentry operator dashboard. Plain JavaScript, no build step, nothing fetched from elsewhere.
//
// It signs in with an operator API key (POST /dashboard/session: an HttpOnly cookie holds the
// session), picks a scope, then reads and writes through the Platos API mounted again under
// /dashboard/api/v1/agent: the same handlers and scoped queries as /api/v1/agent. Writes carry
// the session's CSRF token. /dashboard/live streams approvals, budget alerts and run updates.
// Everything shown is built with DOM nodes and text, never from HTML strings; artifacts (already
// sanitised by the server) are shown in sandboxed frames without scripts.

import {
  request, h, clear, link, errorBox, button, openLive, closeLive, refreshBadge, state, liveHandlers, shell,
  pageLoading, pageReady,
} from './lib.js';
import {
  agentsPage, datasetsPage, playgroundPage, threadsPage,
} from './conversations.js';
import {
  approvalsPage, budgetsPage, costPage, jobsPage, overviewPage, safetyPage, toolsPage,
} from './operations.js';

// ---------------------------------------------------------------- shell

let renderSeq = 0; // a page render that is no longer current stops drawing

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
    try { state.session = await request('/dashboard/session'); } catch { state.session = null; }
  }
  if (state.session && state.session.scope) openLive();
  window.addEventListener('hashchange', render);
  render();
}

function render() {
  const seq = ++renderSeq;
  liveHandlers.clear();
  const root = document.getElementById('app');
  clear(root);
  if (!state.session) return signInPage(root);
  if (!state.session.scope || route().page === 'scope') return scopePage(root);
  const { page, args } = route();
  const main = h('main', { id: 'main' });
  const nav = h('nav', { class: 'side', 'aria-label': 'Dashboard' },
    h('div', { class: 'brand' }, 'Agentry'),
    PAGES.map(([id, label]) => h('a', { href: `#/${id}`, class: id === page ? 'active' : null,
      'aria-current': id === page ? 'page' : null },
    label, id === 'approvals' ? h('span', { class: 'badge', id: 'approvals-badge', hidden: true }, '0') : null)));
  const sc = state.session.scope;
  const top = h('header', { class: 'top' },
    h('div', { class: 'scope' }, `${sc.organizationId} / ${sc.projectId} / ${sc.environmentId}`),
    h('div', { class: 'row' },
      link('#/scope', 'Change scope'),
      button('Sign out', async () => {
        await request('/dashboard/session', { method: 'DELETE' });
        state.session = null; closeLive(); location.hash = ''; render();
      })));
  main.append(top);
  const body = h('div', {});
  main.append(body);
  root.append(h('div', { class: 'layout' }, nav, main));
  refreshBadge();
  const draw = VIEWS[page] || notFoundPage;
  const current = () => seq === renderSeq;
  pageLoading();
  Promise.resolve(draw(body, args, current)).catch((err) => {
    if (current()) body.append(errorBox(err));
  }).finally(() => { if (current()) pageReady(); });
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
      state.session = await request('/dashboard/session', { method: 'POST', body: { apiKey: key.value } });
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
      state.session = await request('/dashboard/session/scope', { method: 'PUT', body: scope });
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
  const org = h('input', { name: 'organizationId', value: state.session.keyOrganizationId || '', 'aria-label': 'Organization' });
  const project = h('input', { name: 'projectId', 'aria-label': 'Project' });
  const env = h('input', { name: 'environmentId', 'aria-label': 'Environment' });
  panel.append(h('h2', {}, 'Another scope'), h('form', { class: 'inline', onsubmit: (e) => {
    e.preventDefault();
    pick({ organizationId: org.value, projectId: project.value, environmentId: env.value });
  } }, h('label', {}, 'Organization', org), h('label', {}, 'Project', project), h('label', {}, 'Environment', env),
  h('button', { type: 'submit' }, 'Open')), problem);
  if (state.session.scope) panel.append(h('p', {}, link('#/overview', 'Back')));
}


const VIEWS = {
  overview: overviewPage, agents: agentsPage, threads: threadsPage, playground: playgroundPage,
  approvals: approvalsPage, budgets: budgetsPage, cost: costPage, jobs: jobsPage, safety: safetyPage, tools: toolsPage,
  datasets: datasetsPage,
};

shell.render = render;
boot();
