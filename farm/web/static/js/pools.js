// Pools page: pools and their workers (experts held, busy / idle), queue depth, the
// planned step split against the pool sizes, excluded workers and recent failures.
import { clock, el, follow } from './api.js';

function table(caption, headers, rows, attrs = {}) {
  return el('table', attrs, el('caption', { text: caption }),
    el('thead', {}, el('tr', {}, ...headers.map((h) => el('th', { scope: 'col', text: h })))),
    el('tbody', {}, ...rows));
}

function cells(values) {
  return values.map((v) => (v instanceof Node ? el('td', {}, v) : el('td', { text: String(v) })));
}

function ratio(values) {
  const xs = values.filter((v) => v > 0);
  if (xs.length !== values.length || xs.length < 2) return '';
  return ` = ${(values[0] / values[1]).toFixed(2)}`;
}

function stacked(label, experts, values) {
  const total = values.reduce((a, b) => a + b, 0) || 1;
  const bar = el('div', { class: 'stack', role: 'img',
    'aria-label': `${label}: ${experts.map((e, i) => `${e} ${values[i]}`).join(', ')}` });
  experts.forEach((e, i) => {
    const part = el('span', { class: `bar-${e}`, title: `${e}: ${values[i]}` });
    part.style.width = `${(100 * values[i]) / total}%`;
    bar.append(part);
  });
  return el('div', { class: 'stack-row' }, el('span', { class: 'stack-label', text: label }), bar,
    el('span', { text: ` ${experts.map((e, i) => `${e} ${values[i]}`).join(' : ')}${ratio(values)}` }));
}

function poolsTable(d) {
  return table('Pools', ['Pool', 'Holds', 'Workers', 'Busy slots', 'Queued phases', 'Running phases'],
    d.pools.map((p) => el('tr', { 'data-pool': p.pool }, ...cells([p.pool, p.holds.join(', '), p.workers,
      el('span', {}, el('meter', { min: 0, max: p.slots, value: p.busy_slots, 'aria-label': `${p.pool} busy slots` }),
        ` ${p.busy_slots} / ${p.slots}`),
      p.queued_phases, p.running_phases]))));
}

function workersTable(d) {
  return table('Workers', ['Worker', 'Pool', 'Holds', 'Slots', 'State', 'Resident expert'],
    d.workers.map((w) => {
      const state = !w.alive ? 'lost' : w.busy ? `busy (${w.busy})` : 'idle';
      return el('tr', { 'data-worker': w.worker_id, 'data-state': state.split(' ')[0] },
        ...cells([w.worker_id, w.pool, w.holds.join(', '), w.slots, state, w.warm || '—']));
    }));
}

function splitSection(d) {
  const s = d.split;
  return el('section', { 'aria-labelledby': 'split-h' },
    el('h2', { id: 'split-h', text: 'Step split against pool sizes' }),
    el('p', { class: 'muted', text: 'Solver steps that unfinished films plan on each expert, '
      + 'and the worker slots that hold each expert. Pools sized like the steps keep both busy.' }),
    stacked('Planned steps', s.experts, s.experts.map((e) => s.planned_steps[e])),
    stacked('Pool slots', s.experts, s.experts.map((e) => s.pool_slots[e])));
}

function failuresSection(d) {
  const excluded = d.excluded.length
    ? table('Excluded workers (your films)', ['Film', 'Workers'],
      d.excluded.map((x) => el('tr', {}, el('td', {}, el('a', { href: `#/${x.film}`, text: x.title })),
        el('td', { text: x.worker_ids.join(', ') }))))
    : el('p', { class: 'muted', text: 'No worker is excluded from your films.' });
  const failures = d.failures.length
    ? table('Recent failures (your films)', ['Time', 'Film', 'What failed', 'Workers'],
      d.failures.map((f) => el('tr', {}, ...cells([clock(f.time),
        el('a', { href: `#/${f.film}`, text: f.title }), f.message, f.worker_ids.join(', ') || '—']))))
    : el('p', { class: 'muted', text: 'No failures in your films.' });
  return el('section', { 'aria-labelledby': 'fail-h' }, el('h2', { id: 'fail-h', text: 'Failures' }),
    excluded, failures);
}

const SECTIONS = [
  ['pools', poolsTable, (d) => d.pools],
  ['workers', workersTable, (d) => d.workers],
  ['split', splitSection, (d) => d.split],
  ['failures', failuresSection, (d) => [d.excluded, d.failures]],
];

export function poolsPage(root, setStatus) {
  const boxes = Object.fromEntries(SECTIONS.map(([k]) => [k, el('div', { id: `pools-${k}` })]));
  const when = el('p', { class: 'muted small', text: 'Waiting for the farm…' });
  root.append(el('h1', { text: 'Pools' }), ...Object.values(boxes), when);
  const last = {};
  // Each part is redrawn only when its data changed (a focused link keeps its focus).
  function render(d) {
    for (const [key, draw, data] of SECTIONS) {
      const json = JSON.stringify(data(d));
      if (last[key] !== json) { last[key] = json; boxes[key].replaceChildren(draw(d)); }
    }
    when.textContent = `Snapshot at ${clock(d.time)}`;
  }
  return follow('api/v1/pools:watch', {
    onMessage: (msg) => { render(msg.data); setStatus(''); },
    onError: (e) => setStatus(e.message),
  });
}
