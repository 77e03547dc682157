// The Stratus console: a page of views over the EC2 and CloudWatch APIs, run as the signed-in
// account through /console/api (see gateway/src/console/mod.rs). Nothing here decides what an
// account may do: the server answers every request as the API would, and its errors are shown
// as they come. Elements are built with `h` (text nodes, never HTML strings), so a name or a
// tag can never become markup.
'use strict';

// --- DOM helpers ------------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value == null || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else if (key === 'value') el.value = value;
    else if (key === 'checked') el.checked = true;
    else el.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

const main = () => document.getElementById('main');

function render(...nodes) {
  main().replaceChildren(...nodes.flat().filter(Boolean));
}

// Each route is a generation; a view still waiting for data when the user moves on must not
// draw over the next page. A view starts with `const show = guard()` and draws with `show`,
// which stops it (throws STALE) once its page is gone.
let generation = 0;
const STALE = new Error('stale view');

function guard() {
  const mine = generation;
  return (...nodes) => {
    if (mine !== generation) throw STALE;
    render(...nodes);
  };
}

function toast(text, bad) {
  const el = document.getElementById('toast');
  el.textContent = text;
  el.className = bad ? 'bad' : '';
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.hidden = true; }, bad ? 8000 : 3500);
}

function errorBox(error) {
  return h('div', { class: 'error-box', role: 'alert' }, plain(error));
}

// An error as a person reads it: the server's message, with its code for searching.
function plain(error) {
  if (!(error instanceof ApiError)) return String(error && error.message || error);
  const hints = {
    UnauthorizedOperation: 'You are not allowed to do this. ',
    RequestLimitExceeded: 'Too many requests; wait a moment and try again. ',
    InsufficientInstanceCapacity: 'No host has room for this right now. ',
  };
  return `${hints[error.code] || ''}${error.message} (${error.code})`;
}

const stateLabel = (state) => h('span', { class: `state ${state}` }, state);
const link = (href, text) => h('a', { href }, text);
const mono = (text) => h('span', { class: 'mono' }, text);

function table(headers, rows, empty) {
  if (!rows.length) return h('p', { class: 'muted' }, empty || 'None.');
  return h('table', {},
    h('thead', {}, h('tr', {}, headers.map((x) => h('th', {}, x)))),
    h('tbody', {}, rows));
}

// --- timers and streams that belong to the current view ---------------------------------------

const owned = { timers: [], streams: [], charts: [] };

function every(ms, fn) {
  owned.timers.push(setInterval(fn, ms));
}

function later(ms, fn) {
  owned.timers.push(setTimeout(fn, ms));
}

function releaseView() {
  owned.timers.forEach((t) => { clearInterval(t); clearTimeout(t); });
  owned.streams.forEach((s) => s.close());
  owned.charts.forEach((c) => c.destroy());
  owned.timers = []; owned.streams = []; owned.charts = [];
}

// --- the API ----------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(code, message, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

let session = null;

async function request(path, options) {
  const headers = Object.assign({}, options.headers || {});
  if (session) headers['X-CSRF-Token'] = session.csrfToken;
  const response = await fetch(path, Object.assign({}, options, { headers, credentials: 'same-origin' }));
  // Only the console's own 401 (JSON) ends the page's session; an EC2 AuthFailure is a 401 too.
  const json = (response.headers.get('Content-Type') || '').startsWith('application/json');
  if (response.status === 401 && json && path !== '/console/api/session') {
    session = null;
    showSignIn('Your session has ended. Sign in again.');
    throw new ApiError('SignedOut', 'Your session has ended.', 401);
  }
  return response;
}

// EC2's query form: nested objects and lists become Name.1.Key=value pairs.
function flatten(value, prefix, form) {
  if (value == null || value === '') return;
  if (Array.isArray(value)) value.forEach((x, i) => flatten(x, `${prefix}.${i + 1}`, form));
  else if (typeof value === 'object') for (const [k, x] of Object.entries(value)) flatten(x, prefix ? `${prefix}.${k}` : k, form);
  else form.append(prefix, String(value));
}

// EC2's XML as plain objects: a set of <item>s is an array, a leaf is its text.
function fromXml(el) {
  const kids = Array.from(el.children);
  if (!kids.length) return el.textContent;
  if (kids.every((k) => k.tagName === 'item')) return kids.map(fromXml);
  const out = {};
  for (const k of kids) out[k.tagName] = fromXml(k);
  return out;
}

const list = (x) => (Array.isArray(x) ? x : []);

async function ec2(action, params) {
  const form = new URLSearchParams({ Action: action, Version: '2016-11-15' });
  flatten(params || {}, '', form);
  const response = await request('/console/api/ec2', {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: form,
  });
  const text = await response.text();
  const doc = new DOMParser().parseFromString(text, 'application/xml');
  if (!response.ok) {
    const code = doc.querySelector('Code');
    const message = doc.querySelector('Message');
    if (!code) {
      let parsed = {};
      try { parsed = JSON.parse(text); } catch (_) { /* not JSON either */ }
      throw new ApiError(parsed.code || 'Error', parsed.message || `The server answered ${response.status}.`, response.status);
    }
    throw new ApiError(code.textContent, message ? message.textContent : '', response.status);
  }
  return fromXml(doc.documentElement);
}

// Every page of a paginated Describe (for the launch form's pickers).
async function ec2All(action, params, key) {
  let token = null;
  const all = [];
  do {
    const out = await ec2(action, Object.assign({}, params, { NextToken: token }));
    all.push(...list(out[key]));
    token = out.nextToken || null;
  } while (token);
  return all;
}

async function cloudwatch(operation, body) {
  const response = await request('/console/api/monitoring', {
    method: 'POST',
    headers: {
      'Content-Type': 'application/x-amz-json-1.0',
      'X-Amz-Target': `GraniteServiceVersion20100801.${operation}`,
    },
    body: JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const code = String(data.__type || data.code || 'Error').split('#').pop();
    throw new ApiError(code, data.message || data.Message || 'The request failed.', response.status);
  }
  return data;
}

const tagsOf = (x) => list(x && x.tagSet);
const nameOf = (x) => (tagsOf(x).find((t) => t.key === 'Name') || {}).value || '';
const instancesOf = (out) => list(out.reservationSet).flatMap((r) => list(r.instancesSet));

function bytes(n) {
  n = Number(n) || 0;
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${n.toFixed(i && n < 10 ? 1 : 0)} ${units[i]}`;
}

const millis = (ms) => (ms == null || ms === '' ? '—' : Number(ms) >= 10000 ? `${(Number(ms) / 1000).toFixed(1)} s` : `${ms} ms`);
const when = (t) => (t ? new Date(typeof t === 'number' ? t : t).toLocaleString() : '—');

// --- confirmation and forms in a dialog -------------------------------------------------------

function dialog(title, body, actions) {
  const d = document.getElementById('dialog');
  return new Promise((resolve) => {
    const close = (value) => { d.close(); resolve(value); };
    d.replaceChildren(
      h('h2', {}, title),
      body,
      h('div', { class: 'actions' },
        h('button', { type: 'button', onclick: () => close(null) }, 'Cancel'),
        actions.map(([label, cls, value]) => h('button', { type: 'button', class: cls, onclick: () => close(typeof value === 'function' ? value() : value) }, label))));
    d.onclose = () => resolve(null);
    d.showModal();
  });
}

const confirmAction = (title, text, label, cls) => dialog(title, h('p', {}, text), [[label, cls || 'primary', true]]);

// --- sign-in and the frame --------------------------------------------------------------------

function showSignIn(message) {
  releaseView();
  document.getElementById('top').hidden = true;
  const key = h('input', { id: 'access-key', name: 'access-key', autocomplete: 'username', required: true });
  const secret = h('input', { id: 'secret-key', name: 'secret-key', type: 'password', autocomplete: 'current-password', required: true });
  const status = h('div');
  const form = h('form', { class: 'panel signin', id: 'sign-in' },
    h('h1', {}, 'Sign in to Stratus'),
    message ? h('div', { class: 'error-box' }, message) : null,
    h('label', { for: 'access-key' }, 'Access key ID'), key,
    h('label', { for: 'secret-key' }, 'Secret access key'), secret,
    h('p', { class: 'muted' }, 'The server printed the admin account\'s keys when it started; `stratus account create` makes more.'),
    status,
    h('button', { class: 'primary', type: 'submit' }, 'Sign in'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    status.replaceChildren();
    const response = await fetch('/console/api/session', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ accessKeyId: key.value.trim(), secretAccessKey: secret.value }),
    });
    const data = await response.json().catch(() => ({}));
    secret.value = '';
    if (!response.ok) {
      status.replaceChildren(h('div', { class: 'error-box', role: 'alert' }, data.message || 'Sign-in failed.'));
      return;
    }
    session = data;
    startFrame();
  });
  render(form);
  key.focus();
}

const PAGES = [
  ['#/instances', 'Instances'], ['#/launch', 'Launch'], ['#/keys', 'Key pairs'],
  ['#/security-groups', 'Security groups'], ['#/volumes', 'Volumes'], ['#/images', 'Images'], ['#/vpcs', 'VPCs'],
];
const ADMIN_PAGES = [['#/hosts', 'Hosts'], ['#/migrations', 'Migrations']];

function startFrame() {
  document.getElementById('top').hidden = false;
  const pages = PAGES.concat(session.admin ? ADMIN_PAGES : []);
  document.getElementById('nav').replaceChildren(...pages.map(([href, text]) => h('a', { href, 'data-page': href }, text)));
  document.getElementById('who').textContent = `account ${session.accountId}${session.admin ? ' · admin' : ''}`;
  if (!location.hash || location.hash === '#/') location.hash = '#/instances';
  else route();
}

document.getElementById('sign-out').addEventListener('click', async () => {
  await request('/console/api/session', { method: 'DELETE' }).catch(() => null);
  session = null;
  showSignIn();
});

// --- routing ----------------------------------------------------------------------------------

const ROUTES = [
  [/^#\/instances$/, viewInstances],
  [/^#\/instances\/([\w-]+)$/, viewInstance],
  [/^#\/instances\/([\w-]+)\/serial$/, viewSerial],
  [/^#\/launch$/, viewLaunch],
  [/^#\/keys$/, viewKeys],
  [/^#\/security-groups$/, viewGroups],
  [/^#\/security-groups\/([\w-]+)$/, viewGroup],
  [/^#\/volumes$/, viewVolumes],
  [/^#\/images$/, viewImages],
  [/^#\/vpcs$/, viewVpcs],
  [/^#\/hosts$/, viewHosts, true],
  [/^#\/hosts\/([\w.-]+)$/, viewHost, true],
  [/^#\/migrations$/, viewMigrations, true],
  [/^#\/migrations\/([\w-]+)$/, viewMigration, true],
];

async function route() {
  if (!session) return;
  generation += 1;
  const mine = generation;
  releaseView();
  const hash = location.hash || '#/instances';
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', hash.startsWith(a.dataset.page));
  for (const [pattern, view, adminOnly] of ROUTES) {
    const m = hash.match(pattern);
    if (!m) continue;
    if (adminOnly && !session.admin) {
      render(h('h1', {}, 'Not available'), h('div', { class: 'error-box', id: 'forbidden' }, 'This page is for administrator accounts.'));
      return;
    }
    render(h('p', { class: 'muted' }, 'Loading…'));
    try {
      await view(...m.slice(1).map(decodeURIComponent));
    } catch (error) {
      if (error === STALE || mine !== generation || (error instanceof ApiError && error.code === 'SignedOut')) return;
      render(h('h1', {}, 'Something went wrong'), errorBox(error));
    }
    return;
  }
  render(h('h1', {}, 'Not found'), h('p', {}, 'There is no such page. '), link('#/instances', 'Instances'));
}

window.addEventListener('hashchange', route);

// --- instances --------------------------------------------------------------------------------

const STATES = ['pending', 'running', 'stopping', 'stopped', 'shutting-down', 'terminated'];
const listState = { state: '', query: '', tokens: [null] };

function instanceFilters() {
  const filters = [];
  if (listState.state) filters.push({ Name: 'instance-state-name', Value: [listState.state] });
  const q = listState.query.trim();
  if (/^i-[0-9a-f]+$/.test(q)) filters.push({ Name: 'instance-id', Value: [q] });
  else if (q.includes('=')) {
    const [key, value] = q.split('=', 2);
    filters.push({ Name: `tag:${key.trim()}`, Value: [value.trim() || '*'] });
  } else if (q) filters.push({ Name: 'tag:Name', Value: [`*${q}*`] });
  return filters;
}

async function bulk(action, ids, done) {
  const verbs = { StartInstances: 'Start', StopInstances: 'Stop', RebootInstances: 'Reboot', TerminateInstances: 'Terminate' };
  const ok = await confirmAction(`${verbs[action]} ${ids.length} instance${ids.length > 1 ? 's' : ''}?`,
    `${ids.join(', ')}${action === 'TerminateInstances' ? ' — terminated instances and their deleteOnTermination volumes cannot be brought back.' : ''}`,
    verbs[action], action === 'TerminateInstances' ? 'danger' : 'primary');
  if (!ok) return;
  try {
    await ec2(action, { InstanceId: ids });
    toast(`${verbs[action]}: ${ids.join(', ')}`);
  } catch (error) {
    toast(plain(error), true);
  }
  done();
}

async function viewInstances() {
  const show = guard();
  const page = listState.tokens.length - 1;
  const out = await ec2('DescribeInstances', { Filter: instanceFilters(), MaxResults: 50, NextToken: listState.tokens[page] });
  const instances = instancesOf(out);
  const selected = new Set();
  const buttons = {};
  const refresh = () => route();
  const syncButtons = () => Object.values(buttons).forEach((b) => { b.disabled = selected.size === 0; });
  for (const [action, label, cls] of [['StartInstances', 'Start'], ['StopInstances', 'Stop'], ['RebootInstances', 'Reboot'], ['TerminateInstances', 'Terminate', 'danger']]) {
    buttons[action] = h('button', { type: 'button', class: cls, disabled: true, 'data-action': action, onclick: () => bulk(action, [...selected], refresh) }, label);
  }
  const search = h('input', { id: 'search', type: 'search', placeholder: 'id, name, or tag key=value', value: listState.query, size: 30 });
  search.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') { listState.query = search.value; listState.tokens = [null]; refresh(); }
  });
  const chips = h('div', { class: 'chips' }, ['', ...STATES].map((s) => h('span', {
    class: `chip${listState.state === s ? ' on' : ''}`, 'data-state': s || 'all',
    onclick: () => { listState.state = s; listState.tokens = [null]; refresh(); },
  }, s || 'all')));
  const all = h('input', { type: 'checkbox', 'aria-label': 'select all', onchange: (e) => {
    for (const box of document.querySelectorAll('input[data-id]')) {
      box.checked = e.target.checked;
      if (box.checked) selected.add(box.dataset.id); else selected.delete(box.dataset.id);
    }
    syncButtons();
  } });
  const rows = instances.map((i) => h('tr', { 'data-instance': i.instanceId },
    h('td', {}, h('input', { type: 'checkbox', 'data-id': i.instanceId, onchange: (e) => {
      if (e.target.checked) selected.add(i.instanceId); else selected.delete(i.instanceId);
      syncButtons();
    } })),
    h('td', {}, nameOf(i) || h('span', { class: 'muted' }, '—')),
    h('td', {}, link(`#/instances/${i.instanceId}`, i.instanceId)),
    h('td', {}, stateLabel(i.instanceState && i.instanceState.name)),
    h('td', {}, i.instanceType),
    h('td', {}, i.placement && i.placement.availabilityZone),
    h('td', { class: 'mono' }, i.privateIpAddress || ''),
    h('td', { class: 'mono' }, i.ipAddress || ''),
    h('td', {}, when(i.launchTime))));
  show(
    h('h1', {}, 'Instances', h('a', { class: 'button primary', href: '#/launch' }, 'Launch instance')),
    h('div', { class: 'toolbar' }, chips, h('span', { class: 'spacer' }), search,
      ...Object.values(buttons), h('button', { type: 'button', onclick: refresh }, 'Refresh')),
    h('div', { class: 'panel' }, table(['', 'Name', 'Instance', 'State', 'Type', 'Zone', 'Private IP', 'Public IP', 'Launched'],
      rows.length ? [h('tr', {}, h('td', {}, all), h('td', { colspan: 8, class: 'muted' }, `${instances.length} on this page`)), ...rows] : [],
      'No instances match.')),
    h('div', { class: 'pager' },
      h('button', { type: 'button', disabled: page === 0, onclick: () => { listState.tokens.pop(); refresh(); } }, '‹ Previous'),
      h('span', { class: 'muted' }, `page ${page + 1}`),
      h('button', { type: 'button', disabled: !out.nextToken, onclick: () => { listState.tokens.push(out.nextToken); refresh(); } }, 'Next ›')));
  // For the benchmark of a big pool (bench/console_paint.py): the first page is in the
  // document, and (a frame later) painted.
  performance.mark('instances-listed');
  requestAnimationFrame(() => setTimeout(() => performance.mark('instances-painted')));
  // Instances on their way somewhere are shown arriving.
  const moving = instances.some((i) => ['pending', 'stopping', 'shutting-down'].includes(i.instanceState && i.instanceState.name));
  if (moving) later(2000, () => { if (!document.querySelector('dialog[open]') && selected.size === 0) refresh(); });
}

async function viewInstance(id) {
  const show = guard();
  const [instance] = instancesOf(await ec2('DescribeInstances', { InstanceId: [id] }));
  if (!instance) throw new ApiError('InvalidInstanceID.NotFound', `The instance ID '${id}' does not exist`);
  const host = session.admin ? hostOf(list((await ec2('DescribeHosts', {})).hostSet), id) : null;
  const state = instance.instanceState.name;
  const refresh = () => route();
  const act = (action) => bulk(action, [id], refresh);
  const actions = h('span', { class: 'toolbar' },
    state === 'stopped' ? h('button', { type: 'button', 'data-action': 'StartInstances', onclick: () => act('StartInstances') }, 'Start') : null,
    state === 'running' ? h('button', { type: 'button', 'data-action': 'StopInstances', onclick: () => act('StopInstances') }, 'Stop') : null,
    state === 'running' ? h('button', { type: 'button', 'data-action': 'RebootInstances', onclick: () => act('RebootInstances') }, 'Reboot') : null,
    state !== 'terminated' ? h('button', { type: 'button', class: 'danger', 'data-action': 'TerminateInstances', onclick: () => act('TerminateInstances') }, 'Terminate') : null,
    state === 'running' ? h('a', { class: 'button', id: 'open-serial', href: `#/instances/${id}/serial` }, 'Serial console') : null,
    session.admin && state === 'running' ? h('button', { type: 'button', class: 'primary', id: 'migrate', onclick: () => migrateDialog(id) }, 'Migrate…') : null);
  const groups = list(instance.groupSet);
  const volumes = list(instance.blockDeviceMapping);
  const interfaces = list(instance.networkInterfaceSet);
  const output = h('pre', { class: 'console', id: 'console-output' }, 'Loading…');
  const loadOutput = async () => {
    try {
      const out = await ec2('GetConsoleOutput', { InstanceId: id, Latest: true });
      output.textContent = out.output ? decodeBase64(out.output) : '(no output yet)';
      output.scrollTop = output.scrollHeight;
    } catch (error) { output.textContent = plain(error); }
  };
  show(
    h('h1', {}, nameOf(instance) || id, stateLabel(state), actions),
    h('div', { class: 'panel' }, h('dl', { class: 'kv' },
      kv('Instance ID', mono(id)), kv('Type', instance.instanceType), kv('Image', mono(instance.imageId)),
      kv('Zone', instance.placement && instance.placement.availabilityZone),
      host ? kv('Host', link(`#/hosts/${host}`, host)) : null,
      kv('VPC', mono(instance.vpcId || '')), kv('Subnet', mono(instance.subnetId || '')),
      kv('Private IP', mono(instance.privateIpAddress || '—')), kv('Public IP', mono(instance.ipAddress || '—')),
      kv('Key pair', instance.keyName || '—'), kv('Launched', when(instance.launchTime)),
      state === 'terminated' || state === 'stopped' ? kv('Reason', instance.stateReason && instance.stateReason.message) : null)),
    h('h2', {}, 'Network interfaces'),
    h('div', { class: 'panel' }, table(['Interface', 'Private IP', 'MAC', 'Subnet', 'Security groups'], interfaces.map((n) => h('tr', {},
      h('td', { class: 'mono' }, n.networkInterfaceId), h('td', { class: 'mono' }, n.privateIpAddress), h('td', { class: 'mono' }, n.macAddress),
      h('td', { class: 'mono' }, n.subnetId), h('td', {}, list(n.groupSet).map((g) => g.groupName).join(', ')))), 'No interfaces.')),
    h('h2', {}, 'Security groups'),
    h('div', { class: 'panel' }, groups.length ? groups.map((g) => h('div', {}, link(`#/security-groups/${g.groupId}`, `${g.groupName} (${g.groupId})`))) : h('p', { class: 'muted' }, 'None.')),
    h('h2', {}, 'Volumes'),
    h('div', { class: 'panel' }, table(['Device', 'Volume', 'Status', 'Delete on termination'], volumes.map((b) => h('tr', {},
      h('td', { class: 'mono' }, b.deviceName), h('td', { class: 'mono' }, b.ebs && b.ebs.volumeId),
      h('td', {}, b.ebs && b.ebs.status), h('td', {}, b.ebs && b.ebs.deleteOnTermination))))),
    h('h2', {}, 'Tags'), tagEditor(id, tagsOf(instance), refresh),
    h('h2', {}, 'Monitoring'), metricsPanel('AWS/EC2', [{ Name: 'InstanceId', Value: id }], INSTANCE_CHARTS),
    h('h2', {}, 'Console output ', h('button', { type: 'button', id: 'refresh-output', onclick: loadOutput }, 'Refresh')), output,
    session.admin ? [h('h2', {}, 'Migrations'), h('div', { class: 'panel', id: 'migration-history' }, await migrationHistory({ InstanceId: [id] }))] : null);
  loadOutput();
  if (['pending', 'stopping', 'shutting-down'].includes(state)) later(2000, () => { if (!document.querySelector('dialog[open]')) refresh(); });
}

// --- the serial console -----------------------------------------------------------------------

// xterm.js comes the first time a serial console opens, not with every page.
let terminalLoaded = null;
function loadTerminal() {
  const script = (src) => new Promise((resolve, reject) => {
    document.head.append(h('script', { src, onload: resolve, onerror: () => reject(new Error(`The terminal (${src}) could not be loaded.`)) }));
  });
  if (!terminalLoaded) {
    document.head.append(h('link', { rel: 'stylesheet', href: '/console/assets/vendor/xterm.css' }));
    terminalLoaded = script('/console/assets/vendor/xterm.js').then(() => script('/console/assets/vendor/addon-canvas.js'));
    terminalLoaded.catch(() => { terminalLoaded = null; });
  }
  return terminalLoaded;
}

// EC2's serial console: the instance's first serial port, live, over a WebSocket of this
// origin (gateway/src/console/serial.rs). The account turns access on first, as on EC2.
async function viewSerial(id) {
  const show = guard();
  const [instance] = instancesOf(await ec2('DescribeInstances', { InstanceId: [id] }));
  if (!instance) throw new ApiError('InvalidInstanceID.NotFound', `The instance ID '${id}' does not exist`);
  const title = h('h1', {}, 'Serial console of ', link(`#/instances/${id}`, nameOf(instance) || id), stateLabel(instance.instanceState.name));
  const access = await ec2('GetSerialConsoleAccessStatus', {});
  if (String(access.serialConsoleAccessEnabled) !== 'true') {
    const enable = async () => {
      try {
        await ec2('EnableSerialConsoleAccess', {});
        route();
      } catch (error) { toast(plain(error), true); }
    };
    show(title, h('div', { class: 'panel', id: 'serial-disabled' },
      h('p', {}, 'EC2 serial console access is disabled for this account. Once enabled, anyone signed in with this account can type on the serial port of its running instances (EnableSerialConsoleAccess; DisableSerialConsoleAccess turns it off).'),
      h('button', { type: 'button', class: 'primary', id: 'enable-serial', onclick: enable }, 'Enable serial console access')));
    return;
  }
  if (instance.instanceState.name !== 'running') {
    show(title, errorBox(`The instance is ${instance.instanceState.name}: a serial console opens on a running instance.`));
    return;
  }
  await loadTerminal();
  const line = h('span', { id: 'serial-status' }, 'Connecting…');
  const again = h('button', { type: 'button', id: 'serial-reconnect', hidden: true, onclick: () => route() }, 'Reconnect');
  const screen = h('div', { class: 'terminal', id: 'serial-terminal' });
  show(title, h('p', { class: 'toolbar' }, line, again), screen,
    h('p', { class: 'muted' }, 'One session per instance: opening another (here or elsewhere) ends this one. What the guest writes is also kept in its console output.'));
  // The canvas renderer, loaded before `open`, draws without the inline styles of the default
  // one, which the page's content security policy refuses. The screen reader mode keeps the
  // text readable by assistive tools (and by the browser tests).
  const term = new Terminal({ cursorBlink: true, fontSize: 14, rows: 30, scrollback: 5000, screenReaderMode: true });
  term.loadAddon(new CanvasAddon.CanvasAddon());
  term.open(screen);
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const path = `/console/api/instances/${encodeURIComponent(id)}/serial?csrf=${encodeURIComponent(session.csrfToken)}`;
  const socket = new WebSocket(`${scheme}://${location.host}${path}`);
  socket.binaryType = 'arraybuffer';
  let opened = false;
  socket.onopen = () => {
    opened = true;
    line.textContent = 'Connected. Press Enter if the guest shows nothing.';
    term.focus();
  };
  socket.onmessage = (event) => term.write(new Uint8Array(event.data));
  socket.onclose = (event) => {
    line.textContent = opened
      ? `Disconnected: ${event.reason || 'the connection closed.'}`
      : 'Could not connect: the instance may have stopped, or your session ended. Reload the page to see why.';
    again.hidden = false;
  };
  const encoder = new TextEncoder();
  term.onData((keys) => { if (socket.readyState === WebSocket.OPEN) socket.send(encoder.encode(keys)); });
  owned.streams.push({ close: () => { socket.close(); term.dispose(); } });
}

function kv(key, value) {
  return [h('dt', {}, key), h('dd', {}, value == null || value === '' ? '—' : value)];
}

function decodeBase64(text) {
  const raw = atob(text);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i += 1) out[i] = raw.charCodeAt(i);
  return new TextDecoder().decode(out);
}

function encodeBase64(text) {
  const raw = new TextEncoder().encode(text);
  let s = '';
  for (const b of raw) s += String.fromCharCode(b);
  return btoa(s);
}

function tagEditor(resourceId, tags, done) {
  const key = h('input', { placeholder: 'key', 'aria-label': 'tag key' });
  const value = h('input', { placeholder: 'value', 'aria-label': 'tag value' });
  const status = h('div');
  const run = async (action, params) => {
    try { await ec2(action, Object.assign({ ResourceId: [resourceId] }, params)); done(); } catch (error) { status.replaceChildren(errorBox(error)); }
  };
  return h('div', { class: 'panel' },
    table(['Key', 'Value', ''], tags.map((t) => h('tr', {}, h('td', {}, t.key), h('td', {}, t.value),
      h('td', {}, h('button', { type: 'button', class: 'link', onclick: () => run('DeleteTags', { Tag: [{ Key: t.key }] }) }, 'remove')))), 'No tags.'),
    h('form', { class: 'toolbar', onsubmit: (e) => { e.preventDefault(); run('CreateTags', { Tag: [{ Key: key.value, Value: value.value }] }); } },
      key, value, h('button', { type: 'submit' }, 'Add tag')),
    status);
}

// --- charts -----------------------------------------------------------------------------------

const INSTANCE_CHARTS = [
  ['CPU utilization', 'percent', [['CPUUtilization', 'Average', 'CPU %']]],
  ['Network', 'bytes', [['NetworkIn', 'Sum', 'in'], ['NetworkOut', 'Sum', 'out']]],
  ['Disk', 'bytes', [['DiskReadBytes', 'Sum', 'read'], ['DiskWriteBytes', 'Sum', 'write']]],
  ['Disk operations', 'count', [['DiskReadOps', 'Sum', 'read'], ['DiskWriteOps', 'Sum', 'write']]],
];
const HOST_CHARTS = [
  ['CPU utilization', 'percent', [['CPUUtilization', 'Average', 'CPU %']]],
  ['Memory', 'bytes', [['MemoryUsed', 'Average', 'used'], ['MemoryFree', 'Average', 'free']]],
  ['Instances', 'count', [['Instances', 'Maximum', 'instances']]],
];
const RANGES = { '1 h': [3600, 60], '24 h': [86400, 300], '7 d': [604800, 3600] };
const COLORS = ['#2457c5', '#c2410c', '#16794c', '#7c3aed'];
let chartRange = '1 h';

function axisValues(kind) {
  if (kind === 'percent') return (u, ticks) => ticks.map((v) => `${v}%`);
  if (kind === 'bytes') return (u, ticks) => ticks.map((v) => bytes(v));
  return (u, ticks) => ticks.map((v) => String(v));
}

function metricsPanel(namespace, dimensions, charts) {
  const grid = h('div', { class: 'charts' });
  const status = h('span', { class: 'muted', id: 'chart-status' });
  const born = generation;
  let drawn = [];
  const draw = async () => {
    const [span, period] = RANGES[chartRange];
    const end = Math.floor(Date.now() / 1000);
    const start = end - span;
    const queries = [];
    charts.forEach(([, , series], c) => series.forEach(([metric, stat], s) => queries.push({
      Id: `m${c}_${s}`, ReturnData: true,
      MetricStat: { Metric: { Namespace: namespace, MetricName: metric, Dimensions: dimensions }, Period: period, Stat: stat },
    })));
    let results;
    try {
      const out = await cloudwatch('GetMetricData', { MetricDataQueries: queries, StartTime: start, EndTime: end, ScanBy: 'TimestampAscending' });
      results = Object.fromEntries((out.MetricDataResults || []).map((r) => [r.Id, r]));
      status.textContent = `updated ${new Date().toLocaleTimeString()}`;
    } catch (error) {
      status.textContent = plain(error);
      return;
    }
    if (born !== generation) return;
    drawn.forEach((c) => c.destroy());
    owned.charts = owned.charts.filter((c) => !drawn.includes(c));
    drawn = [];
    grid.replaceChildren();
    charts.forEach(([title, kind, series], c) => {
      // One x axis for the chart: every period of the range, gaps where nothing was measured.
      const xs = [];
      for (let t = start - (start % period) + period; t <= end; t += period) xs.push(t);
      const columns = series.map((_, s) => {
        const r = results[`m${c}_${s}`] || { Timestamps: [], Values: [] };
        const byTime = new Map(r.Timestamps.map((t, i) => [Math.floor(Number(t) / period) * period, r.Values[i]]));
        return xs.map((t) => (byTime.has(t) ? byTime.get(t) : null));
      });
      const box = h('div', { class: 'chart', 'data-chart': title, 'data-points': String(columns.flat().filter((v) => v != null).length) }, h('h3', {}, title));
      grid.append(box);
      if (typeof uPlot === 'undefined') return;
      const width = Math.max(360, box.clientWidth - 16);
      const chart = new uPlot({
        width, height: 180,
        scales: { x: { time: true }, y: kind === 'percent' ? { range: [0, 100] } : { range: (u, lo, hi) => [0, Math.max(hi || 1, 1)] } },
        axes: [{}, { values: axisValues(kind), size: 70 }],
        series: [{}].concat(series.map(([, , label], s) => ({ label, stroke: COLORS[s], width: 1.5, spanGaps: false, points: { show: true, size: 4 } }))),
      }, [xs, ...columns], box);
      drawn.push(chart);
      owned.charts.push(chart);
    });
  };
  const presets = h('div', { class: 'chips' }, Object.keys(RANGES).map((r) => h('span', {
    class: `chip${r === chartRange ? ' on' : ''}`, 'data-range': r,
    onclick: (e) => {
      chartRange = r;
      for (const chip of presets.children) chip.classList.toggle('on', chip === e.target);
      draw();
    },
  }, r)));
  draw();
  // Redrawn every minute (the finest period) for as long as the view is open.
  every(60000, draw);
  return h('div', {}, h('div', { class: 'toolbar' }, presets, h('span', { class: 'spacer' }), status), grid);
}

// --- launch -----------------------------------------------------------------------------------

async function viewLaunch() {
  const show = guard();
  const [images, types, keys, groups, subnets] = await Promise.all([
    ec2All('DescribeImages', { Filter: [{ Name: 'state', Value: ['available'] }] }, 'imagesSet'),
    ec2All('DescribeInstanceTypes', { MaxResults: 100 }, 'instanceTypeSet'),
    ec2('DescribeKeyPairs', {}).then((o) => list(o.keySet)),
    ec2All('DescribeSecurityGroups', { MaxResults: 1000 }, 'securityGroupInfo'),
    ec2All('DescribeSubnets', { MaxResults: 1000 }, 'subnetSet'),
  ]);
  types.sort((a, b) => (Number(a.vCpuInfo.defaultVCpus) - Number(b.vCpuInfo.defaultVCpus)) || (Number(a.memoryInfo.sizeInMiB) - Number(b.memoryInfo.sizeInMiB)) || a.instanceType.localeCompare(b.instanceType));
  const name = h('input', { id: 'launch-name', placeholder: 'web-1' });
  const image = h('select', { id: 'launch-image', required: true }, images.map((i) => h('option', { value: i.imageId }, `${i.name || i.imageId} (${i.imageId})`)));
  const type = h('select', { id: 'launch-type' }, types.map((t) => h('option', { value: t.instanceType, selected: t.instanceType === 't3.micro' },
    `${t.instanceType} — ${t.vCpuInfo.defaultVCpus} vCPU, ${bytes(Number(t.memoryInfo.sizeInMiB) * 1048576)}`)));
  const keyName = h('select', { id: 'launch-key' }, h('option', { value: '' }, '(none)'), keys.map((k) => h('option', { value: k.keyName }, k.keyName)));
  const newKey = async (importing) => {
    const made = await keyDialog(importing);
    if (made) { keyName.append(h('option', { value: made, selected: true }, made)); keyName.value = made; }
  };
  const subnet = h('select', { id: 'launch-subnet' }, h('option', { value: '' }, '(default subnet)'),
    subnets.map((s) => h('option', { value: s.subnetId }, `${s.subnetId} — ${s.cidrBlock} in ${s.availabilityZone}${s.defaultForAz === 'true' ? ' (default)' : ''}`)));
  const groupBoxes = groups.map((g) => h('label', { class: 'inline' }, h('input', { type: 'checkbox', value: g.groupId, 'data-vpc': g.vpcId, 'data-group': g.groupName }), `${g.groupName} (${g.groupId}, ${g.vpcId})`));
  const volume = h('input', { id: 'launch-volume', type: 'number', min: 0, max: 16384, placeholder: 'GiB (none)' });
  const count = h('input', { id: 'launch-count', type: 'number', min: 1, max: 20, value: '1' });
  const userData = h('textarea', { id: 'launch-user-data', placeholder: '#cloud-config' });
  const tags = h('textarea', { id: 'launch-tags', placeholder: 'key=value, one per line' });
  const status = h('div');
  const submit = async (event) => {
    event.preventDefault();
    status.replaceChildren(h('p', { class: 'muted' }, 'Launching…'));
    const tagList = tags.value.split('\n').map((l) => l.trim()).filter(Boolean).map((l) => { const [k, ...v] = l.split('='); return { Key: k.trim(), Value: v.join('=').trim() }; });
    if (name.value.trim()) tagList.unshift({ Key: 'Name', Value: name.value.trim() });
    const chosen = groupBoxes.map((l) => l.querySelector('input')).filter((b) => b.checked).map((b) => b.value);
    const params = {
      ImageId: image.value, InstanceType: type.value, MinCount: count.value || 1, MaxCount: count.value || 1,
      KeyName: keyName.value || null, SubnetId: subnet.value || null, SecurityGroupId: chosen,
      UserData: userData.value ? encodeBase64(userData.value) : null,
      TagSpecification: tagList.length ? [{ ResourceType: 'instance', Tag: tagList }] : null,
      BlockDeviceMapping: Number(volume.value) > 0 ? [{ DeviceName: '/dev/sdf', Ebs: { VolumeSize: volume.value, DeleteOnTermination: true } }] : null,
    };
    try {
      const out = await ec2('RunInstances', params);
      const ids = list(out.instancesSet).map((i) => i.instanceId);
      toast(`Launched ${ids.join(', ')}`);
      location.hash = ids.length === 1 ? `#/instances/${ids[0]}` : '#/instances';
    } catch (error) {
      status.replaceChildren(errorBox(error));
    }
  };
  show(h('h1', {}, 'Launch an instance'),
    h('form', { class: 'panel form', id: 'launch', onsubmit: submit },
      h('label', { for: 'launch-name' }, 'Name'), name,
      h('label', { for: 'launch-image' }, 'Image'), image,
      h('div', { class: 'grid2' },
        h('div', {}, h('label', { for: 'launch-type' }, 'Instance type'), type),
        h('div', {}, h('label', { for: 'launch-count' }, 'Number of instances'), count)),
      h('label', { for: 'launch-key' }, 'Key pair'),
      h('div', { class: 'toolbar' }, keyName,
        h('button', { type: 'button', id: 'launch-new-key', onclick: () => newKey(false) }, 'Create new…'),
        h('button', { type: 'button', onclick: () => newKey(true) }, 'Import…')),
      h('label', { for: 'launch-subnet' }, 'Subnet'), subnet,
      h('label', {}, 'Security groups (none chosen: the VPC\'s default)'), h('div', {}, groupBoxes),
      h('label', { for: 'launch-volume' }, 'Extra volume (GiB)'), volume,
      h('label', { for: 'launch-user-data' }, 'User data'), userData,
      h('label', { for: 'launch-tags' }, 'Tags'), tags,
      status,
      h('p', {}, h('button', { class: 'primary', type: 'submit', id: 'launch-submit' }, 'Launch'))));
}

// --- key pairs --------------------------------------------------------------------------------

// Creates (or imports) a key pair; a created private key is offered for download once.
async function keyDialog(importing) {
  const name = h('input', { id: 'key-name', required: true });
  const material = h('textarea', { id: 'key-material', placeholder: 'ssh-ed25519 AAAA… (your public key)' });
  const type = h('select', { id: 'key-type' }, h('option', { value: 'ed25519' }, 'ED25519'), h('option', { value: 'rsa' }, 'RSA'));
  const body = h('div', {}, h('label', { for: 'key-name' }, 'Name'), name,
    importing ? [h('label', { for: 'key-material' }, 'Public key'), material] : [h('label', { for: 'key-type' }, 'Type'), type]);
  const ok = await dialog(importing ? 'Import a key pair' : 'Create a key pair', body, [[importing ? 'Import' : 'Create', 'primary', true]]);
  if (!ok) return null;
  try {
    if (importing) {
      await ec2('ImportKeyPair', { KeyName: name.value, PublicKeyMaterial: encodeBase64(material.value.trim()) });
    } else {
      const out = await ec2('CreateKeyPair', { KeyName: name.value, KeyType: type.value });
      const blob = new Blob([out.keyMaterial + '\n'], { type: 'application/x-pem-file' });
      const a = h('a', { href: URL.createObjectURL(blob), download: `${name.value}.pem`, id: 'private-key-download' }, `Download ${name.value}.pem`);
      await dialog('Save the private key now', h('div', {}, h('p', {}, 'This is the only time the private key is shown.'), a), [['Done', 'primary', true]]);
    }
    toast(`Key pair ${name.value} ready`);
    return name.value;
  } catch (error) {
    toast(plain(error), true);
    return null;
  }
}

async function viewKeys() {
  const show = guard();
  const keys = list((await ec2('DescribeKeyPairs', {})).keySet);
  const refresh = () => route();
  show(h('h1', {}, 'Key pairs',
    h('button', { type: 'button', class: 'primary', id: 'create-key', onclick: async () => { if (await keyDialog(false)) refresh(); } }, 'Create key pair'),
    h('button', { type: 'button', onclick: async () => { if (await keyDialog(true)) refresh(); } }, 'Import key pair')),
  h('div', { class: 'panel' }, table(['Name', 'ID', 'Type', 'Fingerprint', 'Created', ''], keys.map((k) => h('tr', { 'data-key': k.keyName },
    h('td', {}, k.keyName), h('td', { class: 'mono' }, k.keyPairId), h('td', {}, k.keyType), h('td', { class: 'mono' }, k.keyFingerprint), h('td', {}, when(k.createTime)),
    h('td', {}, h('button', { type: 'button', class: 'danger', onclick: async () => {
      if (!await confirmAction('Delete key pair?', `${k.keyName} — instances launched with it keep it.`, 'Delete', 'danger')) return;
      try { await ec2('DeleteKeyPair', { KeyName: k.keyName }); refresh(); } catch (error) { toast(plain(error), true); }
    } }, 'Delete')))), 'No key pairs yet.')));
}

// --- security groups --------------------------------------------------------------------------

async function viewGroups() {
  const show = guard();
  const [groups, vpcs] = await Promise.all([
    ec2All('DescribeSecurityGroups', { MaxResults: 1000 }, 'securityGroupInfo'),
    ec2All('DescribeVpcs', { MaxResults: 1000 }, 'vpcSet'),
  ]);
  const name = h('input', { id: 'group-name', placeholder: 'web', required: true });
  const description = h('input', { id: 'group-description', placeholder: 'what it lets in', required: true });
  const vpc = h('select', { id: 'group-vpc' }, vpcs.map((v) => h('option', { value: v.vpcId, selected: v.isDefault === 'true' }, `${v.vpcId} ${v.cidrBlock}${v.isDefault === 'true' ? ' (default)' : ''}`)));
  const status = h('div');
  show(h('h1', {}, 'Security groups'),
    h('div', { class: 'panel' }, table(['Name', 'Group', 'VPC', 'Description', 'Rules in / out'], groups.map((g) => h('tr', { 'data-group': g.groupName },
      h('td', {}, g.groupName), h('td', {}, link(`#/security-groups/${g.groupId}`, g.groupId)), h('td', { class: 'mono' }, g.vpcId), h('td', {}, g.groupDescription),
      h('td', {}, `${list(g.ipPermissions).length} / ${list(g.ipPermissionsEgress).length}`))))),
    h('h2', {}, 'Create a security group'),
    h('form', { class: 'panel toolbar', onsubmit: async (e) => {
      e.preventDefault();
      try {
        const out = await ec2('CreateSecurityGroup', { GroupName: name.value, GroupDescription: description.value, VpcId: vpc.value });
        location.hash = `#/security-groups/${out.groupId}`;
      } catch (error) { status.replaceChildren(errorBox(error)); }
    } }, name, description, vpc, h('button', { type: 'submit', class: 'primary' }, 'Create')), status);
}

function ruleText(r) {
  const proto = r.ipProtocol === '-1' ? 'all traffic' : r.ipProtocol;
  const ports = r.ipProtocol === '-1' ? '' : r.fromPort === r.toPort ? ` ${r.fromPort}` : ` ${r.fromPort}–${r.toPort}`;
  return `${proto}${ports}`;
}

async function viewGroup(id) {
  const show = guard();
  const [group] = list((await ec2('DescribeSecurityGroups', { GroupId: [id] })).securityGroupInfo);
  const rules = list((await ec2('DescribeSecurityGroupRules', { Filter: [{ Name: 'group-id', Value: [id] }], MaxResults: 1000 })).securityGroupRuleSet);
  const refresh = () => route();
  const status = h('div');
  const direction = h('select', { id: 'rule-direction' }, h('option', { value: 'ingress' }, 'Inbound'), h('option', { value: 'egress' }, 'Outbound'));
  const protocol = h('select', { id: 'rule-protocol' }, ['tcp', 'udp', 'icmp', '-1'].map((p) => h('option', { value: p }, p === '-1' ? 'all' : p)));
  const ports = h('input', { id: 'rule-ports', placeholder: '22 or 8000-8100', size: 12 });
  const peer = h('input', { id: 'rule-source', placeholder: '0.0.0.0/0 or sg-…', size: 22 });
  const description = h('input', { id: 'rule-description', placeholder: 'description' });
  const add = async (e) => {
    e.preventDefault();
    let [from, to] = ports.value.split('-').map((x) => x.trim());
    if (protocol.value === 'icmp' && !ports.value) { from = '-1'; to = '-1'; }
    const permission = { IpProtocol: protocol.value, FromPort: protocol.value === '-1' ? null : from, ToPort: protocol.value === '-1' ? null : (to || from) };
    const p = peer.value.trim();
    if (p.startsWith('sg-')) permission.Groups = [{ GroupId: p, Description: description.value || null }];
    else if (p.includes(':')) permission.Ipv6Ranges = [{ CidrIpv6: p, Description: description.value || null }];
    else permission.IpRanges = [{ CidrIp: p || '0.0.0.0/0', Description: description.value || null }];
    try {
      await ec2(direction.value === 'ingress' ? 'AuthorizeSecurityGroupIngress' : 'AuthorizeSecurityGroupEgress', { GroupId: id, IpPermissions: [permission] });
      toast('Rule added');
      refresh();
    } catch (error) { status.replaceChildren(errorBox(error)); }
  };
  const ruleRows = (egress) => rules.filter((r) => (r.isEgress === 'true') === egress).map((r) => h('tr', { 'data-rule': r.securityGroupRuleId },
    h('td', {}, ruleText(r)), h('td', { class: 'mono' }, r.cidrIpv4 || r.cidrIpv6 || (r.referencedGroupInfo && r.referencedGroupInfo.groupId) || ''),
    h('td', {}, r.description || ''), h('td', { class: 'mono' }, r.securityGroupRuleId),
    h('td', {}, h('button', { type: 'button', class: 'link', onclick: async () => {
      try {
        await ec2(egress ? 'RevokeSecurityGroupEgress' : 'RevokeSecurityGroupIngress', { GroupId: id, SecurityGroupRuleId: [r.securityGroupRuleId] });
        refresh();
      } catch (error) { toast(plain(error), true); }
    } }, 'remove'))));
  const headers = ['Protocol / ports', 'Peer', 'Description', 'Rule', ''];
  show(h('h1', {}, `${group.groupName} (${id})`,
    h('button', { type: 'button', class: 'danger', onclick: async () => {
      if (!await confirmAction('Delete security group?', `${group.groupName} (${id})`, 'Delete', 'danger')) return;
      try { await ec2('DeleteSecurityGroup', { GroupId: id }); location.hash = '#/security-groups'; } catch (error) { toast(plain(error), true); }
    } }, 'Delete')),
  h('p', { class: 'muted' }, `${group.groupDescription} · ${group.vpcId}`),
  h('h2', {}, 'Inbound rules'), h('div', { class: 'panel', id: 'inbound' }, table(headers, ruleRows(false), 'No inbound rules: nothing may come in.')),
  h('h2', {}, 'Outbound rules'), h('div', { class: 'panel', id: 'outbound' }, table(headers, ruleRows(true), 'No outbound rules: nothing may go out.')),
  h('h2', {}, 'Add a rule'),
  h('form', { class: 'panel toolbar', id: 'add-rule', onsubmit: add }, direction, protocol, ports, peer, description, h('button', { type: 'submit', class: 'primary' }, 'Add rule')),
  status,
  h('h2', {}, 'Tags'), tagEditor(id, tagsOf(group), refresh));
}

// --- volumes, images, VPCs --------------------------------------------------------------------

async function viewVolumes() {
  const show = guard();
  const [volumes, zones] = await Promise.all([
    ec2All('DescribeVolumes', { MaxResults: 500 }, 'volumeSet'),
    ec2('DescribeAvailabilityZones', {}).then((o) => list(o.availabilityZoneInfo)),
  ]);
  const refresh = () => route();
  const run = async (action, params, message) => {
    try { await ec2(action, params); toast(message); refresh(); } catch (error) { toast(plain(error), true); }
  };
  const attach = async (v) => {
    const running = instancesOf(await ec2('DescribeInstances', { Filter: [{ Name: 'availability-zone', Value: [v.availabilityZone] }, { Name: 'instance-state-name', Value: ['running', 'stopped'] }], MaxResults: 1000 }));
    const instance = h('select', { id: 'attach-instance' }, running.map((i) => h('option', { value: i.instanceId }, `${nameOf(i) || i.instanceId} (${i.instanceId})`)));
    const device = h('input', { id: 'attach-device', value: '/dev/sdf' });
    const ok = await dialog(`Attach ${v.volumeId}`, h('div', {}, h('label', {}, 'Instance'), instance, h('label', {}, 'Device'), device), [['Attach', 'primary', true]]);
    if (ok) run('AttachVolume', { VolumeId: v.volumeId, InstanceId: instance.value, Device: device.value }, `Attaching ${v.volumeId}`);
  };
  const resize = async (v) => {
    const size = h('input', { id: 'resize-size', type: 'number', min: v.size, value: v.size });
    const ok = await dialog(`Resize ${v.volumeId}`, h('div', {}, h('label', {}, 'New size (GiB, larger only)'), size), [['Resize', 'primary', true]]);
    if (ok) run('ModifyVolume', { VolumeId: v.volumeId, Size: size.value }, `Resizing ${v.volumeId}`);
  };
  const size = h('input', { id: 'volume-size', type: 'number', min: 1, value: 1, size: 6 });
  const zone = h('select', { id: 'volume-zone' }, zones.map((z) => h('option', { value: z.zoneName }, z.zoneName)));
  const type = h('select', { id: 'volume-type' }, ['gp3', 'gp2', 'io1', 'io2', 'st1', 'sc1', 'standard'].map((t) => h('option', { value: t }, t)));
  show(h('h1', {}, 'Volumes'),
    h('div', { class: 'panel' }, table(['Volume', 'Name', 'Size', 'Type', 'Zone', 'State', 'Attached to', ''], volumes.map((v) => {
      const a = list(v.attachmentSet)[0];
      return h('tr', { 'data-volume': v.volumeId },
        h('td', { class: 'mono' }, v.volumeId), h('td', {}, nameOf(v)), h('td', { class: 'num' }, `${v.size} GiB`), h('td', {}, v.volumeType),
        h('td', {}, v.availabilityZone), h('td', {}, stateLabel(v.status)),
        h('td', {}, a ? [link(`#/instances/${a.instanceId}`, a.instanceId), ` ${a.device}`] : ''),
        h('td', { class: 'toolbar' },
          a ? h('button', { type: 'button', onclick: () => run('DetachVolume', { VolumeId: v.volumeId }, `Detaching ${v.volumeId}`) }, 'Detach')
            : h('button', { type: 'button', onclick: () => attach(v) }, 'Attach…'),
          h('button', { type: 'button', onclick: () => resize(v) }, 'Resize…'),
          h('button', { type: 'button', onclick: () => run('CreateSnapshot', { VolumeId: v.volumeId, Description: `from the console` }, `Snapshot of ${v.volumeId} started`) }, 'Snapshot'),
          a ? null : h('button', { type: 'button', class: 'danger', onclick: async () => {
            if (await confirmAction('Delete volume?', `${v.volumeId} and its data`, 'Delete', 'danger')) run('DeleteVolume', { VolumeId: v.volumeId }, `Deleted ${v.volumeId}`);
          } }, 'Delete')));
    }), 'No volumes.')),
    h('h2', {}, 'Create a volume'),
    h('form', { class: 'panel toolbar', onsubmit: (e) => { e.preventDefault(); run('CreateVolume', { Size: size.value, AvailabilityZone: zone.value, VolumeType: type.value }, 'Volume created'); } },
      h('span', {}, 'Size (GiB)'), size, zone, type, h('button', { type: 'submit', class: 'primary' }, 'Create')));
}

async function viewImages() {
  const show = guard();
  const images = await ec2All('DescribeImages', {}, 'imagesSet');
  const refresh = () => route();
  show(h('h1', {}, 'Images'),
    h('div', { class: 'panel' }, table(['Image', 'Name', 'Owner', 'State', 'Architecture', 'Created', ''], images.map((i) => h('tr', { 'data-image': i.imageId },
      h('td', { class: 'mono' }, i.imageId), h('td', {}, i.name), h('td', {}, i.imageOwnerId === session.accountId ? 'you' : i.imageOwnerId),
      h('td', {}, stateLabel(i.imageState)), h('td', {}, i.architecture), h('td', {}, when(i.creationDate)),
      h('td', {}, i.imageOwnerId === session.accountId ? h('button', { type: 'button', class: 'danger', onclick: async () => {
        if (!await confirmAction('Deregister image?', `${i.name} (${i.imageId})`, 'Deregister', 'danger')) return;
        try { await ec2('DeregisterImage', { ImageId: i.imageId }); refresh(); } catch (error) { toast(plain(error), true); }
      } }, 'Deregister') : ''))), 'No images. Import one with `stratus image import` or register one with the API.')));
}

async function viewVpcs() {
  const show = guard();
  const [vpcs, subnets] = await Promise.all([
    ec2All('DescribeVpcs', { MaxResults: 1000 }, 'vpcSet'),
    ec2All('DescribeSubnets', { MaxResults: 1000 }, 'subnetSet'),
  ]);
  const refresh = () => route();
  const cidr = h('input', { id: 'vpc-cidr', placeholder: '10.1.0.0/16', required: true });
  const subnetVpc = h('select', { id: 'subnet-vpc' }, vpcs.map((v) => h('option', { value: v.vpcId }, `${v.vpcId} ${v.cidrBlock}`)));
  const subnetCidr = h('input', { id: 'subnet-cidr', placeholder: '10.1.1.0/24', required: true });
  const status = h('div');
  const run = async (action, params) => {
    try { await ec2(action, params); refresh(); } catch (error) { status.replaceChildren(errorBox(error)); }
  };
  show(h('h1', {}, 'VPCs and subnets'),
    h('div', { class: 'panel' }, table(['VPC', 'Name', 'CIDR', 'State', 'Default', ''], vpcs.map((v) => h('tr', { 'data-vpc': v.vpcId },
      h('td', { class: 'mono' }, v.vpcId), h('td', {}, nameOf(v)), h('td', { class: 'mono' }, v.cidrBlock), h('td', {}, stateLabel(v.state)), h('td', {}, v.isDefault === 'true' ? 'yes' : ''),
      h('td', {}, h('button', { type: 'button', class: 'link', onclick: async () => {
        if (await confirmAction('Delete VPC?', v.vpcId, 'Delete', 'danger')) run('DeleteVpc', { VpcId: v.vpcId });
      } }, 'delete')))))),
    h('form', { class: 'panel toolbar', onsubmit: (e) => { e.preventDefault(); run('CreateVpc', { CidrBlock: cidr.value }); } }, 'New VPC', cidr, h('button', { type: 'submit' }, 'Create VPC')),
    h('h2', {}, 'Subnets'),
    h('div', { class: 'panel' }, table(['Subnet', 'VPC', 'CIDR', 'Zone', 'Free addresses', 'Public IPs', ''], subnets.map((s) => h('tr', { 'data-subnet': s.subnetId },
      h('td', { class: 'mono' }, s.subnetId), h('td', { class: 'mono' }, s.vpcId), h('td', { class: 'mono' }, s.cidrBlock), h('td', {}, s.availabilityZone),
      h('td', { class: 'num' }, s.availableIpAddressCount), h('td', {}, s.mapPublicIpOnLaunch === 'true' ? 'on launch' : ''),
      h('td', {}, h('button', { type: 'button', class: 'link', onclick: async () => {
        if (await confirmAction('Delete subnet?', s.subnetId, 'Delete', 'danger')) run('DeleteSubnet', { SubnetId: s.subnetId });
      } }, 'delete')))))),
    h('form', { class: 'panel toolbar', onsubmit: (e) => { e.preventDefault(); run('CreateSubnet', { VpcId: subnetVpc.value, CidrBlock: subnetCidr.value }); } }, 'New subnet in', subnetVpc, subnetCidr, h('button', { type: 'submit' }, 'Create subnet')),
    status);
}

// --- hosts (admin) ----------------------------------------------------------------------------

function capacityOf(host) {
  const total = Number(host.hostProperties && host.hostProperties.totalVCpus) || 0;
  const free = Number(host.availableCapacity && host.availableCapacity.availableVCpus) || 0;
  const u = host.utilization || {};
  const used = Number(u.memoryUsedMiB) || 0;
  const memory = used + (Number(u.memoryFreeMiB) || 0);
  return { vcpus: total, vcpusAllocated: total - free, vcpusFree: free, memory, memoryAllocated: used, memoryFree: memory - used };
}

function meter(value, total, text) {
  const fill = h('span');
  fill.style.width = `${total ? Math.min(100, (100 * value) / total) : 0}%`;
  return h('div', {}, h('div', { class: 'bar' }, fill), h('small', { class: 'muted' }, text));
}

async function viewHosts() {
  const show = guard();
  const hosts = list((await ec2('DescribeHosts', {})).hostSet);
  const running = list((await ec2('DescribeInstanceMigrations', { Filter: [{ Name: 'status', Value: ['queued', 'preparing', 'copying', 'post-copy', 'completing'] }] })).migrationSet);
  const refresh = () => route();
  show(h('h1', {}, 'Hosts', h('button', { type: 'button', onclick: refresh }, 'Refresh')),
    h('div', { class: 'panel' }, table(['Host', 'Zone', 'State', 'vCPUs allocated', 'Memory allocated', 'CPU used', 'Instances', 'Maintenance', ''], hosts.map((host) => {
      const c = capacityOf(host);
      const u = host.utilization || {};
      const draining = running.filter((m) => m.sourceHostId === host.hostId).length;
      const maintenance = host.hostMaintenance === 'on';
      return h('tr', { 'data-host': host.hostId },
        h('td', {}, link(`#/hosts/${host.hostId}`, host.hostId), h('div', { class: 'muted mono' }, host.uri || '')),
        h('td', {}, host.availabilityZone), h('td', {}, stateLabel(u.reachable === 'false' ? 'unreachable' : host.state)),
        h('td', {}, meter(c.vcpusAllocated, c.vcpus, `${c.vcpusAllocated} of ${c.vcpus}`)),
        h('td', {}, meter(c.memoryAllocated, c.memory, `${bytes(c.memoryAllocated * 1048576)} of ${bytes(c.memory * 1048576)}`)),
        h('td', {}, `${u.cpuPercent || 0}%`),
        h('td', { class: 'num' }, list(host.instances).length),
        h('td', {}, maintenance ? `on${draining ? ` — draining, ${draining} migration${draining > 1 ? 's' : ''} running, ${list(host.instances).length} left` : ''}` : 'off'),
        h('td', {}, h('button', { type: 'button', 'data-maintenance': host.hostId, onclick: async () => {
          const turning = maintenance ? 'off' : 'on';
          const ok = await confirmAction(`Maintenance ${turning} for ${host.hostId}?`,
            turning === 'on' ? 'The host leaves placement and its running instances are live-migrated to other hosts.' : 'The host takes new instances again.', `Turn ${turning}`);
          if (!ok) return;
          try { await ec2('ModifyHosts', { HostId: [host.hostId], HostMaintenance: turning }); refresh(); } catch (error) { toast(plain(error), true); }
        } }, maintenance ? 'End maintenance' : 'Maintenance')));
    }))));
  if (running.length) later(2000, refresh);
}

async function viewHost(id) {
  const show = guard();
  const [host] = list((await ec2('DescribeHosts', { HostId: [id] })).hostSet);
  if (!host) throw new ApiError('InvalidHostID.NotFound', `The host ID '${id}' does not exist`);
  const c = capacityOf(host);
  show(h('h1', {}, id, stateLabel(host.state)),
    h('div', { class: 'panel' }, h('dl', { class: 'kv' },
      kv('URI', mono(host.uri || '')), kv('Zone', host.availabilityZone), kv('Maintenance', host.hostMaintenance),
      kv('vCPUs', `${c.vcpusAllocated} allocated of ${c.vcpus}`),
      kv('Memory', `${bytes(c.memoryAllocated * 1048576)} allocated of ${bytes(c.memory * 1048576)}`))),
    h('h2', {}, 'Instances'),
    // Any account's instances run here: the admin moves them from this list (their pages
    // belong to their accounts).
    h('div', { class: 'panel' }, table(['Instance', 'Type', ''], list(host.instances).map((i) => h('tr', { 'data-host-instance': i.instanceId },
      h('td', { class: 'mono' }, i.instanceId), h('td', {}, i.instanceType),
      h('td', {}, h('button', { type: 'button', onclick: () => migrateDialog(i.instanceId) }, 'Migrate…')))), 'No instances.')),
    h('h2', {}, 'Monitoring (measured on the host)'), metricsPanel('Stratus/Host', [{ Name: 'HostId', Value: id }], HOST_CHARTS),
    h('h2', {}, 'Migrations from this host'), h('div', { class: 'panel' }, await migrationHistory({ Filter: [{ Name: 'source-host-id', Value: [id] }] })),
    h('h2', {}, 'Migrations to this host'), h('div', { class: 'panel' }, await migrationHistory({ Filter: [{ Name: 'target-host-id', Value: [id] }] })));
}

// --- migrations (admin) -----------------------------------------------------------------------

async function migrationHistory(params) {
  const migrations = list((await ec2('DescribeInstanceMigrations', Object.assign({ MaxResults: 100 }, params))).migrationSet);
  migrations.sort((a, b) => String(b.startTime).localeCompare(String(a.startTime)));
  return table(['Migration', 'Instance', 'Status', 'From → to', 'Downtime', 'Total', 'Started'], migrations.map((m) => h('tr', { 'data-migration': m.migrationId },
    h('td', {}, link(`#/migrations/${m.migrationId}`, m.migrationId)), h('td', { class: 'mono' }, m.instanceId),
    h('td', {}, stateLabel(m.status)), h('td', { class: 'mono' }, `${m.sourceHostId} → ${m.targetHostId}`),
    h('td', { class: 'num' }, m.status === 'completed' ? millis(m.downtimeMillis) : '—'), h('td', { class: 'num' }, millis(m.totalTimeMillis)),
    h('td', {}, when(m.startTime)))), 'No migrations.');
}

async function viewMigrations() {
  const show = guard();
  show(h('h1', {}, 'Live migrations'), h('div', { class: 'panel' }, await migrationHistory({})));
}

// The pool's host that runs the instance (admins see every host's instances).
const hostOf = (hosts, instanceId) => (hosts.find((x) => list(x.instances).some((i) => i.instanceId === instanceId)) || {}).hostId;

async function migrateDialog(instanceId) {
  const hosts = list((await ec2('DescribeHosts', {})).hostSet);
  const here = hostOf(hosts, instanceId);
  const candidates = hosts.filter((x) => x.hostId !== here);
  const radios = [h('label', { class: 'inline' }, h('input', { type: 'radio', name: 'target', value: '', checked: true }), 'Let the scheduler choose')];
  const rows = candidates.map((x) => {
    const c = capacityOf(x);
    const unavailable = x.state !== 'available' || x.hostMaintenance === 'on';
    return h('tr', { 'data-candidate': x.hostId },
      h('td', {}, h('label', { class: 'inline' }, h('input', { type: 'radio', name: 'target', value: x.hostId, disabled: unavailable }), x.hostId)),
      h('td', {}, x.availabilityZone), h('td', { class: 'num' }, `${c.vcpusFree} free`), h('td', { class: 'num' }, `${bytes(c.memoryFree * 1048576)} free`),
      h('td', {}, unavailable ? (x.hostMaintenance === 'on' ? 'in maintenance' : x.state) : ''));
  });
  const downtime = h('input', { id: 'migrate-downtime', type: 'number', min: 1, placeholder: 'ms (libvirt default)' });
  const bandwidth = h('input', { id: 'migrate-bandwidth', type: 'number', min: 1, placeholder: 'MiB/s (unlimited)' });
  const timeout = h('input', { id: 'migrate-timeout', type: 'number', min: 1, placeholder: 'seconds (none)' });
  const converge = h('input', { id: 'migrate-auto-converge', type: 'checkbox' });
  const postCopy = h('input', { id: 'migrate-post-copy', type: 'checkbox' });
  const body = h('div', { id: 'migrate-dialog' },
    h('p', {}, `Move ${instanceId} live from ${here || 'its host'} to:`), radios,
    table(['Host', 'Zone', 'vCPUs', 'Memory', ''], rows, 'No other host.'),
    h('div', { class: 'grid2' },
      h('div', {}, h('label', { for: 'migrate-downtime' }, 'Max downtime'), downtime),
      h('div', {}, h('label', { for: 'migrate-bandwidth' }, 'Bandwidth'), bandwidth),
      h('div', {}, h('label', { for: 'migrate-timeout' }, 'Give up after'), timeout)),
    h('label', { class: 'inline' }, converge, 'Auto-converge (throttle the guest\'s vCPUs if the copy does not converge)'),
    h('label', { class: 'inline' }, postCopy, 'Allow post-copy (switch over early; memory follows on demand)'));
  const ok = await dialog('Live migration', body, [['Migrate', 'primary', true]]);
  if (!ok) return;
  const target = (body.querySelector('input[name=target]:checked') || {}).value;
  try {
    const out = await ec2('MigrateInstance', {
      InstanceId: instanceId, TargetHostId: target || null, MaxDowntimeMillis: downtime.value || null,
      BandwidthMiBps: bandwidth.value || null, TimeoutSeconds: timeout.value || null,
      AutoConverge: converge.checked || null, AllowPostCopy: postCopy.checked || null,
    });
    const id = out.migration ? out.migration.migrationId : out.migrationId;
    location.hash = `#/migrations/${id}`;
  } catch (error) {
    toast(plain(error), true);
  }
}

const FINAL = ['completed', 'failed', 'cancelled'];

// A migration pushed by the server: DescribeInstanceMigrations' XML for it, as the API answers.
const fromStream = (xml) => list(fromXml(new DOMParser().parseFromString(xml, 'application/xml').documentElement).migrationSet)[0];
const PHASES = {
  queued: 'Waiting to start', preparing: 'Preparing the target', copying: 'Copying memory (pre-copy)',
  'post-copy': 'Running on the target; memory follows (post-copy)', completing: 'Switching over',
  completed: 'Completed', failed: 'Failed', cancelled: 'Cancelled',
};

async function viewMigration(id) {
  const page = guard();
  const [first] = list((await ec2('DescribeInstanceMigrations', { MigrationId: [id] })).migrationSet);
  if (!first) throw new ApiError('InvalidMigrationID.NotFound', `The migration ID '${id}' does not exist`);
  const figures = h('div', { class: 'figures', id: 'migration-figures' });
  const phase = h('div', { class: 'big', id: 'migration-phase' });
  const outcome = h('div', { id: 'migration-outcome' });
  const cancel = h('button', { type: 'button', class: 'danger', id: 'migration-cancel', onclick: async () => {
    try { await ec2('CancelInstanceMigration', { MigrationId: id }); toast('Cancel requested'); } catch (error) { toast(plain(error), true); }
  } }, 'Cancel migration');
  const postCopy = h('button', { type: 'button', id: 'migration-post-copy', hidden: true, onclick: async () => {
    const ok = await confirmAction('Switch to post-copy?',
      'The guest starts running on the target now and pulls the rest of its memory from the source as it needs it. There is no way back: if the link between the hosts fails before the copy ends, the guest is lost.',
      'Switch to post-copy', 'danger');
    if (!ok) return;
    try { await ec2('StartInstanceMigrationPostCopy', { MigrationId: id }); toast('Switching to post-copy'); } catch (error) { toast(plain(error), true); }
  } }, 'Switch to post-copy');
  const live = h('span', { class: 'muted', id: 'migration-live' });
  const chartBox = h('div', { class: 'chart', id: 'migration-chart' }, h('h3', {}, 'Memory remaining and dirty rate against bandwidth'));
  const samples = [[], [], [], []];
  let chart = null;
  const figure = (label, value, key) => h('div', { class: 'figure', 'data-figure': key }, h('div', { class: 'label' }, label), h('div', { class: 'big' }, value));
  const show = (m) => {
    phase.textContent = PHASES[m.status] || m.status;
    phase.dataset.status = m.status;
    cancel.hidden = FINAL.includes(m.status) || m.status === 'post-copy';
    // Offered while pre-copy runs, for a migration started with post-copy allowed.
    postCopy.hidden = m.allowPostCopy !== 'true' || m.postCopyRequested === 'true'
      || !['queued', 'preparing', 'copying'].includes(m.status);
    const rate = Number(m.dirtyRateBytesPerSecond) || 0;
    const bandwidth = Number(m.bandwidthBytesPerSecond) || 0;
    figures.replaceChildren(
      figure('Memory remaining', bytes(m.memoryRemainingBytes), 'remaining'),
      figure('Memory processed', bytes(m.memoryProcessedBytes), 'processed'),
      figure('Guest memory', bytes(m.memoryTotalBytes), 'total'),
      figure('Dirty rate / bandwidth', `${bytes(rate)}/s of ${bytes(bandwidth)}/s`, 'rates'),
      figure('Iteration', String(m.iterations || 0), 'iterations'),
      figure('Elapsed', millis(m.totalTimeMillis), 'elapsed'),
      ...(m.postCopyRequests > 0 ? [figure('Post-copy page requests', String(m.postCopyRequests), 'post-copy')] : []));
    if (m.status === 'completed') {
      const requested = m.maxDowntimeMillis ? `${m.maxDowntimeMillis} ms requested` : 'no maximum requested';
      outcome.replaceChildren(h('div', { class: 'panel' }, h('dl', { class: 'kv' },
        kv('Downtime (measured by libvirt)', h('span', { id: 'migration-downtime' }, millis(m.downtimeMillis))), kv('Maximum downtime', requested),
        // libvirt's downtime of a post-copy migration may run on to the end of the copy: the
        // pause Stratus watched at the switch is the guest's own.
        m.postCopyPauseMillis != null && m.postCopyPauseMillis !== ''
          ? kv('Pause at the switch to post-copy (watched by Stratus)', h('span', { id: 'migration-post-copy-pause' }, millis(m.postCopyPauseMillis)))
          : null,
        kv('Total time', h('span', { id: 'migration-total' }, millis(m.totalTimeMillis))), kv('Setup', millis(m.setupTimeMillis)),
        m.pingLargestGapMillis != null && m.pingLargestGapMillis !== ''
          ? kv('Largest ping gap (the network\'s view)', h('span', { id: 'migration-ping-gap' }, `${millis(m.pingLargestGapMillis)} · ${m.pingsAnswered} of ${m.pingsSent} pings answered`))
          : null)));
    } else if (m.status === 'failed' || m.status === 'cancelled') {
      outcome.replaceChildren(h('div', { class: m.status === 'failed' ? 'error-box' : 'panel' }, m.errorMessage || `The migration was ${m.status}; the instance runs on ${m.sourceHostId}.`));
    }
    // Samples from before libvirt's first statistics (all zero) would draw a false start.
    if ((m.status === 'copying' || m.status === 'post-copy') && Number(m.memoryTotalBytes) > 0) {
      samples[0].push(Date.now() / 1000);
      samples[1].push(Number(m.memoryRemainingBytes) || 0);
      samples[2].push(rate);
      samples[3].push(bandwidth);
      if (typeof uPlot !== 'undefined') {
        if (!chart) {
          chart = new uPlot({
            width: Math.max(480, chartBox.clientWidth - 16), height: 200, scales: { x: { time: true } },
            axes: [{}, { values: axisValues('bytes'), size: 70 }],
            series: [{}, { label: 'remaining', stroke: COLORS[0], width: 1.5 }, { label: 'dirty rate /s', stroke: COLORS[1] }, { label: 'bandwidth /s', stroke: COLORS[2] }],
          }, samples, chartBox);
          owned.charts.push(chart);
        } else chart.setData(samples);
      }
    }
  };
  const traceBox = h('div', { class: 'chart', id: 'migration-trace', hidden: true }, h('h3', {}, 'Ping trace: round trip every 10 ms (lost pings in red); dashed: libvirt reported the move done'));
  const drawTrace = async () => {
    const response = await request(`/console/api/migrations/${encodeURIComponent(id)}/trace`, { method: 'GET' });
    if (!response.ok) return;
    const trace = await response.json();
    const xs = trace.probes.map(([sent]) => sent / 1e6);
    const rtt = trace.probes.map(([, r]) => (r == null ? null : r / 1000));
    const lost = trace.probes.map(([, r]) => (r == null ? 0 : null));
    const switchAt = trace.switchOverMicros == null ? null : trace.switchOverMicros / 1e6;
    traceBox.hidden = false;
    traceBox.dataset.probes = String(xs.length);
    traceBox.dataset.lost = String(lost.filter((x) => x === 0).length);
    if (typeof uPlot === 'undefined' || !xs.length) return;
    owned.charts.push(new uPlot({
      width: Math.max(480, traceBox.clientWidth - 16), height: 200,
      scales: { x: { time: false } },
      axes: [{ values: (u, ticks) => ticks.map((v) => `${v.toFixed(1)} s`) }, { values: (u, ticks) => ticks.map((v) => `${v} ms`), size: 60 }],
      series: [{}, { label: 'round trip', stroke: COLORS[0], width: 1, spanGaps: false },
        { label: 'lost', stroke: COLORS[1], width: 0, points: { show: true, size: 5, fill: COLORS[1] } }],
      hooks: { draw: [(u) => {
        if (switchAt == null) return;
        const x = u.valToPos(switchAt, 'x', true);
        u.ctx.save();
        u.ctx.strokeStyle = COLORS[2];
        u.ctx.setLineDash([4, 4]);
        u.ctx.beginPath();
        u.ctx.moveTo(x, u.bbox.top);
        u.ctx.lineTo(x, u.bbox.top + u.bbox.height);
        u.ctx.stroke();
        u.ctx.restore();
      }] },
    }, [xs, rtt, lost], traceBox));
  };
  page(h('h1', {}, `Migration ${id}`, postCopy, cancel),
    h('p', {}, 'Instance ', mono(first.instanceId), ` from ${first.sourceHostId} to ${first.targetHostId} · `, live),
    phase, figures, outcome, chartBox, traceBox);
  show(first);
  if (FINAL.includes(first.status)) { live.textContent = 'finished'; drawTrace(); return; }
  // Progress is pushed by the server as it happens (server-sent events).
  const stream = new EventSource(`/console/api/migrations/${encodeURIComponent(id)}/events`);
  owned.streams.push(stream);
  let events = 0;
  stream.addEventListener('progress', (e) => {
    events += 1;
    live.textContent = 'live';
    live.dataset.events = String(events);
    show(fromStream(e.data));
  });
  stream.addEventListener('end', (e) => {
    live.textContent = 'finished';
    stream.close();
    if (e.data) show(fromStream(e.data));
    drawTrace();
  });
  stream.onerror = () => { live.textContent = 'reconnecting…'; };
}

// --- start ------------------------------------------------------------------------------------

(async function start() {
  const response = await fetch('/console/api/session', { credentials: 'same-origin' });
  if (response.ok) {
    session = await response.json();
    startFrame();
  } else {
    showSignIn();
  }
}());
