// Films page: every film of the tenant, sortable, updated live (SSE `films`).
import { clock, el, follow, seconds, stateBadge } from './api.js';

const COLUMNS = [
  { key: 'title', label: 'Film', value: (f) => f.title.toLowerCase() },
  { key: 'state', label: 'State', value: (f) => f.state },
  { key: 'progress', label: 'Frames', value: (f) => f.frames_done / Math.max(1, f.frames_total) },
  { key: 'phases', label: 'Phases', value: (f) => f.phases_done / Math.max(1, f.phases_total) },
  { key: 'ttff', label: 'First frame after', value: (f) => f.time_to_first_frame ?? Infinity },
  { key: 'eta', label: 'ETA', value: (f) => f.eta_seconds ?? Infinity },
  { key: 'priority', label: 'Priority', value: (f) => f.priority },
  { key: 'created', label: 'Created', value: (f) => f.create_time },
];

export function filmsPage(root, setStatus) {
  let films = [];
  let sort = { key: 'created', dir: -1 };
  const tbody = el('tbody');
  const head = el('tr');
  const table = el('table', { class: 'films', 'aria-describedby': 'films-caption' },
    el('caption', { id: 'films-caption', text: 'Your films; the table updates as they render.' }),
    el('thead', {}, head), tbody);
  const empty = el('p', { class: 'muted', text: 'No films yet: submit one with `reelfarm submit`.' });
  root.append(el('h1', { text: 'Films' }), table, empty);

  function header() {
    head.replaceChildren(...COLUMNS.map((c) => {
      const active = sort.key === c.key;
      const th = el('th', { scope: 'col', 'aria-sort': active ? (sort.dir > 0 ? 'ascending' : 'descending') : 'none' });
      th.append(el('button', {
        type: 'button', class: 'sort', 'data-sort': c.key,
        text: `${c.label}${active ? (sort.dir > 0 ? ' ▲' : ' ▼') : ''}`,
        'aria-label': `Sort by ${c.label}`,
        onclick: () => {
          sort = { key: c.key, dir: active ? -sort.dir : 1 };
          header();
          render();
        },
      }));
      return th;
    }));
  }

  function row(f) {
    const pct = Math.round((100 * f.frames_done) / Math.max(1, f.frames_total));
    return el('tr', { 'data-film': f.id, 'data-state': f.state },
      el('th', { scope: 'row' }, el('a', { href: `#/films/${f.id}`, text: f.title }),
        el('div', { class: 'muted small', text: f.name })),
      el('td', {}, stateBadge(f.state)),
      el('td', {},
        el('progress', { max: f.frames_total, value: f.frames_done, 'aria-label': `${f.title}: frames delivered` }),
        el('span', { class: 'frames-text', text: ` ${f.frames_done} / ${f.frames_total} (${pct} %)` })),
      el('td', { text: `${f.phases_done} / ${f.phases_total}` }),
      el('td', { text: seconds(f.time_to_first_frame) }),
      el('td', { text: f.state === 'RUNNING' ? seconds(f.eta_seconds) : '—' }),
      el('td', { text: String(f.priority) }),
      el('td', { text: clock(f.create_time) }));
  }

  // Rows are updated cell by cell and moved only when the order changes, so a focused
  // link keeps its focus while the table updates.
  const rows = new Map();
  function update(f) {
    const fresh = row(f);
    const cur = rows.get(f.id);
    if (!cur) { rows.set(f.id, fresh); return fresh; }
    [...fresh.cells].forEach((cell, i) => {
      if (cur.cells[i].innerHTML !== cell.innerHTML) cur.cells[i].replaceWith(cell);
    });
    cur.dataset.state = f.state;
    return cur;
  }

  function render() {
    const col = COLUMNS.find((c) => c.key === sort.key);
    const sorted = [...films].sort((a, b) => {
      const x = col.value(a);
      const y = col.value(b);
      return (x < y ? -1 : x > y ? 1 : 0) * sort.dir || b.create_time - a.create_time;
    });
    const order = sorted.map(update);
    const ids = new Set(sorted.map((f) => f.id));
    for (const id of [...rows.keys()]) if (!ids.has(id)) { rows.get(id).remove(); rows.delete(id); }
    const now = [...tbody.children];
    if (now.length !== order.length || now.some((tr, i) => tr !== order[i])) tbody.replaceChildren(...order);
    empty.hidden = films.length > 0;
    table.hidden = films.length === 0;
  }

  header();
  render();
  return follow('api/v1/films:watch', {
    onMessage: (msg) => { films = msg.data; render(); setStatus(''); },
    onError: (e) => setStatus(e.message),
  });
}
