// The API reference page: renders /openapi.json (same origin) with DOM nodes, never HTML strings.
const h = (tag, attrs = {}, ...children) => {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') el.className = v; else el.setAttribute(k, v);
  }
  for (const child of children.flat()) if (child != null) el.append(child);
  return el;
};

let spec;

/** The schema a `$ref` names, or the schema itself. */
const resolve = (schema) => {
  if (schema && schema.$ref) return spec.components.schemas[schema.$ref.split('/').pop()] || {};
  return schema || {};
};

const typeOf = (schema) => {
  if (!schema) return 'any';
  if (schema.$ref) return schema.$ref.split('/').pop();
  if (schema.oneOf || schema.anyOf) return (schema.oneOf || schema.anyOf).map(typeOf).join(' | ');
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(' | ');
  const type = Array.isArray(schema.type) ? schema.type.join(' | ') : schema.type;
  if (type === 'array') return `${typeOf(schema.items)}[]`;
  return type || 'any';
};

/** A number's range, e.g. ` 1..=200` or ` ≥ 0`. */
const bounds = (schema = {}) => {
  const { minimum: low, maximum: high } = schema;
  if (low != null && high != null) return ` ${low}..=${high}`;
  if (low != null) return ` ≥ ${low}`;
  return high != null ? ` ≤ ${high}` : '';
};

/** A table of an object schema's fields (one level; referenced types are named). */
function fields(schema) {
  const resolved = resolve(schema);
  const props = resolved.properties;
  if (!props) return h('p', {}, h('code', {}, typeOf(schema)));
  const required = new Set(resolved.required || []);
  return h('table', {},
    h('tr', {}, h('th', {}, 'Field'), h('th', {}, 'Type'), h('th', {}, 'Description')),
    Object.entries(props).map(([name, prop]) => h('tr', {},
      h('td', {}, h('code', {}, name), required.has(name) ? ' *' : ''),
      h('td', {}, h('code', {}, typeOf(prop))),
      h('td', { class: 'muted' }, prop.description || ''))));
}

function operation(path, method, op) {
  const id = op.operationId;
  const section = h('section', { class: 'op', id, 'data-search': `${method} ${path} ${op.summary || ''}`.toLowerCase() },
    h('div', {}, h('span', { class: `method ${method.toUpperCase()}` }, method.toUpperCase()), h('span', { class: 'path' }, path)),
    h('p', {}, op.summary || ''));
  const params = op.parameters || [];
  for (const [where, title] of [['path', 'Path parameters'], ['query', 'Query parameters']]) {
    const listed = params.filter((p) => p.in === where);
    if (listed.length) {
      section.append(h('h3', {}, title), h('table', {}, listed.map((p) => h('tr', {},
        h('td', {}, h('code', {}, p.name), p.required ? ' *' : ''),
        h('td', {}, h('code', {}, typeOf(p.schema)), bounds(p.schema)),
        h('td', { class: 'muted' }, p.description || '')))));
    }
  }
  if (op.security && op.security.length) {
    section.append(h('h3', {}, 'Credentials'), h('p', {}, op.security.map((s) => Object.keys(s)[0]).join(' or ')));
  }
  const body = op.requestBody && op.requestBody.content && op.requestBody.content['application/json'];
  if (body) section.append(h('h3', {}, `Body: ${typeOf(body.schema)}`), fields(body.schema));
  section.append(h('h3', {}, 'Responses'), h('table', {}, Object.entries(op.responses || {}).map(([code, r]) => {
    const [type, content] = Object.entries(r.content || {})[0] || [];
    return h('tr', {}, h('td', {}, h('code', {}, code)), h('td', {}, r.description || ''),
      h('td', {}, content ? h('code', {}, `${type}: ${typeOf(content.schema)}`) : ''));
  })));
  return section;
}

async function main() {
  const response = await fetch('/openapi.json');
  spec = await response.json();
  document.title = `${spec.info.title} ${spec.info.version} — API reference`;
  const main = document.getElementById('main');
  const toc = document.getElementById('toc');
  main.replaceChildren(h('h1', {}, `${spec.info.title} API`), h('p', { class: 'muted' }, `OpenAPI ${spec.openapi} · version ${spec.info.version} · `, h('a', { href: '/openapi.json' }, 'openapi.json')),
    h('p', {}, spec.info.description || ''));
  for (const tag of spec.tags || []) {
    const ops = [];
    for (const [path, item] of Object.entries(spec.paths)) {
      for (const [method, op] of Object.entries(item)) {
        if ((op.tags || []).includes(tag.name)) ops.push([path, method, op]);
      }
    }
    main.append(h('h2', { id: `tag-${tag.name}` }, tag.name), h('p', { class: 'muted' }, tag.description || ''));
    toc.append(h('h2', {}, tag.name));
    for (const [path, method, op] of ops) {
      main.append(operation(path, method, op));
      toc.append(h('a', { href: `#${op.operationId}`, 'data-op': op.operationId }, `${method.toUpperCase()} ${path}`));
    }
  }
  const schemas = Object.entries(spec.components.schemas || {});
  main.append(h('h2', { id: 'schemas' }, 'Schemas'));
  for (const [name, schema] of schemas) main.append(h('section', { class: 'op', id: `schema-${name}` }, h('h3', {}, name), fields(schema)));
  document.getElementById('filter').addEventListener('input', (e) => {
    const needle = e.target.value.toLowerCase();
    for (const section of main.querySelectorAll('section[data-search]')) {
      const shown = section.dataset.search.includes(needle);
      section.hidden = !shown;
      const link = toc.querySelector(`[data-op="${section.id}"]`);
      if (link) link.hidden = !shown;
    }
  });
}

main().catch((err) => {
  document.getElementById('main').replaceChildren(h('p', {}, `Could not load /openapi.json: ${err}`));
});
