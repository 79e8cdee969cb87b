// The live cache panel: polls GET /cache/stats every second and shows hit ratios per
// tier from the change of the hits/misses counters between polls (not the lifetime
// ratio), the page's own last requests with their X-Cache header, and a plot.

import { api, onRequests } from './api.js';
import { $, el } from './dom.js';
import { drawPlot } from './plot.js';

const PERIOD_MS = 1000;
const HISTORY = 60; // polls kept for the plot
const WINDOW = 30; // polls summed for the "last 30 s" column

let previous = null; // the last counters: {tier: {hits, misses}}
const history = []; // per poll: {tier: {hits, misses}} deltas, oldest first

/** Starts polling and listing requests. */
export function startPanel() {
  onRequests(renderRequests);
  poll();
}

async function poll() {
  const started = performance.now();
  try {
    const { json } = await api('GET', '/cache/stats', undefined, { quiet: true });
    update(json);
    setState('live', `live · ${clock(new Date())}`);
  } catch (e) {
    setState('down', `stats unavailable (${e.describe()})`);
  }
  const spent = performance.now() - started;
  setTimeout(poll, Math.max(100, PERIOD_MS - spent));
}

function setState(kind, text) {
  const pill = $('panel-state');
  pill.dataset.state = kind;
  pill.textContent = text;
}

function update(stats) {
  $('strategy').textContent = stats.strategy;
  $('topology').textContent = stats.topology;
  $('consistency').textContent = stats.write_consistency;
  const bp = stats.backplane;
  $('backplane').textContent = bp ? (bp.connected ? 'connected' : 'down: L1 bypassed') : 'not in use';
  $('loads').textContent = stats.loader.calls;
  $('coalesced').textContent = stats.loader.coalesced;
  $('pending').textContent = stats.recovery.pending;

  const now = {};
  for (const t of stats.tiers) now[t.tier] = { hits: t.hits, misses: t.misses };
  if (previous) {
    const delta = {};
    for (const [tier, c] of Object.entries(now)) {
      const p = previous[tier] ?? { hits: 0, misses: 0 };
      // Counters going down means the service restarted: count from zero.
      const restarted = c.hits < p.hits || c.misses < p.misses;
      delta[tier] = restarted ? { ...c } : { hits: c.hits - p.hits, misses: c.misses - p.misses };
    }
    history.push(delta);
    if (history.length > HISTORY) history.shift();
  }
  previous = now;

  const tiers = Object.keys(now);
  renderRatios(tiers);
  drawPlot($('plot'), tiers, history.map((d) => mapTiers(tiers, (t) => ratio(d[t]))), HISTORY);
}

function mapTiers(tiers, fn) {
  return Object.fromEntries(tiers.map((t) => [t, fn(t)]));
}

/** Hits over reads, or null when there were no reads. */
function ratio(c) {
  const reads = c ? c.hits + c.misses : 0;
  return reads === 0 ? null : c.hits / reads;
}

function sum(deltas, tier) {
  const total = { hits: 0, misses: 0 };
  for (const d of deltas) {
    total.hits += d[tier]?.hits ?? 0;
    total.misses += d[tier]?.misses ?? 0;
  }
  return total;
}

function cell(counts) {
  const r = ratio(counts);
  const text = r === null ? 'idle' : `${Math.round(r * 100)} %`;
  const td = el('td', { className: 'num' }, text);
  if (r !== null) td.append(el('small', {}, ` ${counts.hits}/${counts.hits + counts.misses}`));
  return td;
}

function renderRatios(tiers) {
  const last = history.at(-1) ?? {};
  const recent = history.slice(-WINDOW);
  const rows = tiers.map((tier) =>
    el('tr', { className: `tier-${tier}` },
      el('th', { scope: 'row' }, tier.toUpperCase()),
      cell(last[tier]),
      cell(sum(recent, tier))));
  $('ratios').replaceChildren(...rows);
}

function renderRequests(entries) {
  const items = entries.map((r) => {
    const cache = r.xCache ?? '–';
    return el('li', {},
      el('span', { className: `badge ${r.xCache ? r.xCache.toLowerCase() : 'none'}` }, cache),
      el('code', { title: `${r.method} ${r.path}` }, `${r.method} ${r.path}`),
      el('span', { className: r.status >= 400 || r.status === 0 ? 'status bad' : 'status' },
        String(r.status || 'failed')),
      el('time', { dateTime: r.at.toISOString() }, clock(r.at)));
  });
  if (items.length === 0) items.push(el('li', { className: 'empty' }, 'none yet'));
  $('requests').replaceChildren(...items);
}

/** 15:04:05 */
function clock(date) {
  return date.toLocaleTimeString([], { hour12: false });
}
