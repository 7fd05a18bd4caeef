// Agentry dashboard: what every page uses — requests through the session, DOM helpers (data is
// drawn with nodes and text, never HTML strings), the live feed, the SSE reader, the bar chart.

export const API = '/dashboard/api/v1/agent';
/** What the page knows: the signed-in session ({apiKeyId, keyOrganizationId, csrfToken, scope,
 * expiresAt}) and the live feed (an EventSource of /dashboard/live). */
export const state = { session: null, live: null };
/** Page listeners of live events, cleared on each page change. */
export const liveHandlers = new Set();
/** A page adds its listeners once it has loaded what it shows. An event that comes while it loads
 * may change what it is reading, so it is owed a 'resync' when it is ready (see pageReady). */
const pageLoad = { loading: false, missed: false };
/** The shell registers how to draw the current page again (after a sign-out, a change). */
export const shell = { render: () => {} };

// ---------------------------------------------------------------- requests

export class HttpError extends Error {
  constructor(status, data, fallback) {
    super((data && (data.message || data.error)) || fallback);
    this.status = status;
    this.data = data;
  }
}

export async function request(url, { method = 'GET', body, headers = {}, signal } = {}) {
  const sent = { ...headers };
  if (body !== undefined) sent['content-type'] = 'application/json';
  if (method !== 'GET' && state.session) sent['x-csrf-token'] = state.session.csrfToken;
  const res = await fetch(url, {
    method, headers: sent, signal, credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 204) return null;
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!res.ok) {
    if (res.status === 401 && state.session) { state.session = null; closeLive(); shell.render(); }
    throw new HttpError(res.status, data, `${res.status} ${res.statusText}`);
  }
  return data;
}

export const api = (path, options) => request(API + path, options);
export const q = (params) => {
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') search.set(k, v);
  const text = search.toString();
  return text ? `?${text}` : '';
};

// ---------------------------------------------------------------- DOM helpers

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';
export function s(tag, attrs, ...children) {
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

export function clear(el) { while (el.firstChild) el.firstChild.remove(); }

export function toast(text, isError = false) {
  const el = h('div', { class: 'toast' + (isError ? ' error' : ''), role: 'status' }, text);
  document.body.append(el);
  setTimeout(() => el.remove(), 4000);
}

/** A time in the viewer's zone, with UTC on hover. */
export function when(value) {
  if (value === null || value === undefined || value === '') return h('span', { class: 'muted' }, '—');
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return h('time', { datetime: date.toISOString(), title: `UTC ${date.toISOString().replace('T', ' ').slice(0, 19)}` },
    date.toLocaleString());
}

export function money(cents) {
  const dollars = (Number(cents) || 0) / 100;
  if (dollars === 0) return '$0';
  return '$' + (Math.abs(dollars) >= 1 ? dollars.toFixed(2) : dollars.toPrecision(3));
}

export const num = (n) => (Number(n) || 0).toLocaleString();
export const ms = (n) => (n === null || n === undefined ? '—' : `${Math.round(Number(n) * 10) / 10} ms`);
export const status = (text) => h('span', { class: `status ${text}` }, text || '—');
export const link = (href, text) => h('a', { href }, text);
export const json = (value) => h('pre', {}, JSON.stringify(value, null, 2));

export function table(columns, rows, { empty = 'Nothing here yet.', onRow } = {}) {
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

export function errorBox(err) {
  return h('p', { class: 'error', role: 'alert' }, err instanceof Error ? err.message : String(err));
}

/** A button that runs `action`, disabled while it runs; errors become a toast. */
export function button(label, action, cls = '') {
  const el = h('button', { type: 'button', class: cls }, label);
  el.addEventListener('click', async () => {
    el.disabled = true;
    try { await action(); } catch (err) { toast(err.message, true); } finally { el.disabled = false; }
  });
  return el;
}

// ---------------------------------------------------------------- live events

/** A page starts loading: live events from now on are owed to it. */
export function pageLoading() {
  pageLoad.loading = true;
  pageLoad.missed = false;
}

/** The page has loaded and listens: if an event came meanwhile, it reloads what it shows. */
export function pageReady() {
  const missed = pageLoad.missed;
  pageLoad.loading = false;
  pageLoad.missed = false;
  if (missed) for (const handler of [...liveHandlers]) handler('resync', null);
}

function deliver(kind, data) {
  if (pageLoad.loading) pageLoad.missed = true;
  for (const handler of [...liveHandlers]) handler(kind, data);
}

export function openLive() {
  closeLive();
  state.live = new EventSource('/dashboard/live');
  // Events sent before the feed was (re)connected are not replayed: on every open, pages reload
  // what they show ('resync'), so nothing raised in the gap is missed.
  state.live.addEventListener('open', () => {
    refreshBadge();
    deliver('resync', null);
  });
  for (const kind of ['approval', 'alert', 'run']) {
    state.live.addEventListener(kind, (e) => {
      let data = null;
      try { data = JSON.parse(e.data); } catch { return; }
      if (kind === 'approval') refreshBadge();
      if (kind === 'alert') toast(`Budget alert: ${data.message || data.capId || 'a cap crossed a threshold'}`);
      deliver(kind, data);
    });
  }
}

export function closeLive() {
  if (state.live) state.live.close();
  state.live = null;
}

export async function refreshBadge() {
  const badge = document.getElementById('approvals-badge');
  if (!badge) return;
  try {
    const data = await api('/monitoring/approvals' + q({ status: 'pending', limit: 1 }));
    const count = data.pendingCount ?? data.approvals.length;
    badge.textContent = String(count);
    badge.hidden = count === 0;
  } catch { /* the page shows errors; the badge stays as it was */ }
}


export async function streamTurn(path, body, headers, signal, onEvent) {
  const res = await fetch(API + path, {
    method: 'POST', signal, credentials: 'same-origin',
    headers: { 'content-type': 'application/json', 'x-csrf-token': state.session.csrfToken, accept: 'text/event-stream', ...headers },
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


export function barChart(points, format = money) {
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

