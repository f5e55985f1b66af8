// The film page's parts: summary, controls, deliverables and render log.
import { call, clock, download, el, seconds, stateBadge } from './api.js';

function field(label, id, attrs = {}) {
  return el('span', { class: 'field' }, el('label', { for: id, text: label }), el('input', { id, ...attrs }));
}

const value = (span) => Number(span.querySelector('input').value);

// Controls. `act(label, path, init)` calls the API and shows its refusal; nothing is
// checked here (no second copy of the API's rules: its messages say what is wrong).
export function controlsSection(filmId, act, titleOf, alert) {
  const control = (verb, label, body) => act(label, `api/v1/films/${filmId}:${verb}`, { method: 'POST', body });
  const prio = field('Priority (0–100)', 'priority', { type: 'number', inputmode: 'numeric' });
  const first = field('First frame (0-based)', 'rerender-first', { type: 'number', value: 0 });
  const last = field('Last frame (0-based)', 'rerender-last', { type: 'number', value: 0 });
  const scene = el('select', { id: 'rerender-scene' });
  const button = (id, text, onclick, cls) => el('button', { type: 'button', id, class: cls, text, onclick });
  const section = el('section', { 'aria-labelledby': 'controls-h' },
    el('h2', { id: 'controls-h', text: 'Controls' }),
    el('div', { class: 'buttons' },
      button('pause', 'Pause', () => control('pause', 'Pause')),
      button('resume', 'Resume', () => control('resume', 'Resume')),
      button('retry', 'Retry', () => control('retry', 'Retry')),
      button('cancel', 'Cancel film', () => {
        if (window.confirm(`Cancel ${titleOf()}?`)) control('cancel', 'Cancel');
      }, 'danger')),
    el('form', {
      class: 'inline', novalidate: true, 'aria-label': 'Priority',
      onsubmit: (ev) => {
        ev.preventDefault();
        act('Set priority', `api/v1/films/${filmId}`, { method: 'PATCH', body: { priority: value(prio) } });
      },
    }, prio, el('button', { type: 'submit', text: 'Set priority' })),
    el('form', {
      class: 'inline', novalidate: true, 'aria-label': 'Re-render a frame range',
      onsubmit: (ev) => {
        ev.preventDefault();
        control('rerender', 'Re-render', { scene_id: scene.value, first_frame: value(first), last_frame: value(last) });
      },
    }, el('span', { class: 'field' }, el('label', { for: 'rerender-scene', text: 'Scene' }), scene),
    first, last, el('button', { type: 'submit', text: 'Re-render frames' })),
    alert);
  return {
    section,
    setScenes: (scenes) => scene.replaceChildren(...scenes.map((s) => el('option', { value: s.id, text: `${s.id} (${s.frames} frames)` }))),
    setPriority: (p) => { const input = prio.querySelector('input'); if (document.activeElement !== input) input.value = p; },
  };
}

export function showSummary(title, summary, film) {
  title.replaceChildren(`${film.title} `, stateBadge(film.state));
  const item = (k, v, id) => [el('dt', { text: k }), el('dd', { id, text: v })];
  summary.replaceChildren(
    ...item('Name', film.name),
    ...item('Frames', `${film.frames_done} / ${film.frames_total}`, 'frames-done'),
    ...item('Phases', `${film.phases_done} / ${film.phases_total}`, 'phases-done'),
    ...item('First frame after', seconds(film.time_to_first_frame)),
    ...item('ETA', film.state === 'RUNNING' ? seconds(film.eta_seconds) : '—', 'eta'),
    ...item('Priority', String(film.priority), 'priority-value'),
    ...item('Created', clock(film.create_time)),
    ...item('State', film.reason ? `${film.state}: ${film.reason}` : film.state, 'film-state'));
  summary.querySelector('#frames-done').prepend(el('progress', {
    max: film.frames_total, value: film.frames_done, 'aria-label': 'Frames delivered' }), ' ');
}

export async function showDeliverables(box, filmId, alert) {
  try {
    const d = await call(`api/v1/films/${filmId}/deliverables`);
    const parts = [];
    if (d.mp4) {
      parts.push(el('p', {}, el('button', {
        type: 'button', id: 'download-mp4', text: `Download ${d.mp4.file} (${(d.mp4.bytes / 1024).toFixed(1)} KiB)`,
        onclick: () => download(d.mp4.url, `${filmId}.mp4`).catch((e) => { alert.textContent = e.message; }),
      }), ` ${d.mp4.labelled ? 'Labelled AI-generated inside the file.' : 'No embedded AI-generated label.'}`));
    }
    if (d.note) parts.push(el('p', { class: 'muted', text: d.note }));
    for (const m of d.manifests) {
      parts.push(el('details', {}, el('summary', { text: `Provenance manifest of ${m.deliverable}` }),
        el('pre', { text: m.manifest })));
    }
    box.replaceChildren(...parts);
  } catch (e) { box.replaceChildren(el('p', { class: 'muted', text: e.message })); }
}

export function logSection() {
  const body = el('tbody');
  const count = el('span', { text: '' });
  const section = el('section', { 'aria-labelledby': 'log-h' }, el('h2', { id: 'log-h' }, 'Render log ', count),
    el('table', { class: 'log' }, el('thead', {}, el('tr', {},
      ...['#', 'Kind', 'Unit', 'Phase', 'Expert', 'Workers', 'Seconds', 'Ended', 'Message']
        .map((h) => el('th', { scope: 'col', text: h })))), body));
  async function refresh(filmId) {
    try {
      const log = await call(`api/v1/films/${filmId}/executions`);
      count.textContent = `(${log.length})`;
      body.replaceChildren(...log.map((x) => el('tr', { class: x.succeeded ? '' : 'failed' },
        ...[x.name.split('/').pop(), x.kind, x.unit_id, x.phase_index ?? '', x.expert, x.worker_ids.join(', '),
          x.duration === null ? '' : x.duration.toFixed(2), clock(x.end_time), x.message]
          .map((v) => el('td', { text: String(v) })))));
    } catch (e) { count.textContent = `(${e.message})`; }
  }
  return { section, refresh };
}
