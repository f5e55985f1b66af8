// Film page: state and progress, controls (through the API: its errors are shown as it
// words them), the render as a Gantt chart, a live preview, deliverables, render log.
//
// Live: the film's events (SSE, from the first) feed the chart and trigger a refresh of
// the film (counters, ETA); frames (SSE) feed the preview. Both streams end with the
// film and start again if it runs again (a retry or a re-render, from here or elsewhere).
import { call, el, follow } from './api.js';
import { controlsSection, logSection, showDeliverables, showSummary } from './film_parts.js';
import { drawGantt } from './gantt.js';
import { previewPlayer } from './preview.js';

const FINAL = ['SUCCEEDED', 'FAILED', 'CANCELLED'];

function timelineSection(onRows) {
  const chart = el('div', { class: 'chart', id: 'gantt' });
  const legend = el('ul', { class: 'legend', 'aria-label': 'Colours' });
  const rows = el('select', { id: 'gantt-by' },
    el('option', { value: 'units', text: 'scenes and segments' }), el('option', { value: 'workers', text: 'workers' }));
  rows.addEventListener('change', () => onRows(rows.value));
  const section = el('section', { 'aria-labelledby': 'timeline-h' },
    el('h2', { id: 'timeline-h', text: 'Render timeline' }),
    el('div', { class: 'field' }, el('label', { for: 'gantt-by', text: 'Rows' }), rows), legend, chart);
  const setExperts = (experts) => legend.replaceChildren(...[...experts, 'decode'].map((k) => el('li', {},
    el('span', { class: `swatch bar-${k}` }), k === 'decode' ? 'decode (VAE)' : `${k}-noise expert`.replace('dense-noise', 'dense'))));
  return { section, chart, setExperts };
}

export function filmPage(root, filmId, setStatus) {
  const s = { film: null, plan: null, events: [], by: 'units', eventsEnded: true, player: null, stops: [] };
  const alert = el('div', { role: 'alert', class: 'error', id: 'film-error' });
  const title = el('h1', { text: filmId });
  const summary = el('dl', { class: 'summary' });
  const deliver = el('div', { id: 'deliverables' });
  const previewBox = el('div', { id: 'preview-box' });
  const log = logSection();
  const timeline = timelineSection((by) => { s.by = by; drawChart(); });

  async function act(label, path, init) {
    alert.textContent = '';
    setStatus(`${label}…`);
    try {
      s.film = await call(path, init);
      showFilm();
      const said = `${label}: the film is ${s.film.state}.`;
      setStatus(said);
      setTimeout(() => { if (document.getElementById('status').textContent === said) setStatus(''); }, 5000);
    } catch (e) {
      alert.textContent = `${label} refused (${e.status}): ${e.message}`;
      setStatus('');
    }
  }
  const controls = controlsSection(filmId, act, () => (s.film ? s.film.title : filmId), alert);
  root.append(el('p', {}, el('a', { href: '#/films', text: '← All films' })), title, summary, controls.section,
    timeline.section,
    el('section', { 'aria-labelledby': 'preview-h' }, el('h2', { id: 'preview-h', text: 'Preview' }), previewBox),
    el('section', { 'aria-labelledby': 'deliver-h' }, el('h2', { id: 'deliver-h', text: 'Deliverables' }), deliver),
    log.section);

  function drawChart() {
    if (!s.plan || !s.film) return;
    const run = s.events.find((e) => e.kind === 'state' && e.state === 'RUNNING');
    const t0 = Math.min(run ? run.time : s.film.create_time,
      ...s.events.filter((e) => e.duration).map((e) => e.time - e.duration));
    drawGantt(timeline.chart, s.plan, s.events, { by: s.by, t0, now: FINAL.includes(s.film.state) ? 0 : Date.now() / 1000 });
  }

  function showFilm() {
    showSummary(title, summary, s.film);
    controls.setPriority(s.film.priority);
    drawChart();
    live();
  }

  async function refresh() {
    try {
      s.film = await call(`api/v1/films/${filmId}`);
      showFilm();
    } catch (e) { setStatus(e.message); }
  }

  // Streams that ended with the film start again when it runs again.
  function live() {
    if (!s.player) {
      s.player = previewPlayer(filmId, s.film.fps);
      previewBox.replaceChildren(s.player.box);
      s.stops.push(() => s.player.stop());
    } else if (s.player.ended() && !FINAL.includes(s.film.state)) {
      s.player.restart();
    }
    if (s.eventsEnded && !(FINAL.includes(s.film.state) && s.events.length)) followEvents();
  }

  let pending = null;
  const soon = () => { if (!pending) pending = setTimeout(() => { pending = null; refresh(); }, 300); };
  function followEvents() {
    s.eventsEnded = false;
    const after = s.events.length ? s.events[s.events.length - 1].seq : 0;
    s.stops.push(follow(`api/v1/films/${filmId}/events?after=${after}`, {
      onMessage: ({ data }) => {
        s.events.push(data);
        if (data.kind === 'state' && FINAL.includes(data.state)) {
          showDeliverables(deliver, filmId, alert);
          log.refresh(filmId);
        }
        soon();
      },
      onError: (e) => { s.eventsEnded = true; setStatus(e.message); },
      onEnd: () => { s.eventsEnded = true; refresh(); log.refresh(filmId); },
    }));
  }

  (async () => {
    try {
      s.plan = await call(`api/v1/films/${filmId}/plan`);
    } catch (e) { setStatus(e.message); return; }
    timeline.setExperts(s.plan.experts);
    controls.setScenes(s.plan.scenes);
    await refresh();
    showDeliverables(deliver, filmId, alert);
    log.refresh(filmId);
    // Live films every second (ETA, counters); finished ones every 5 s, in case a client
    // elsewhere re-renders or retries them.
    let ticks = 0;
    const timer = setInterval(() => {
      ticks += 1;
      if (s.film && (!FINAL.includes(s.film.state) || ticks % 5 === 0)) refresh();
    }, 1000);
    s.stops.push(() => clearInterval(timer));
  })();
  return () => { for (const stop of s.stops) stop(); if (pending) clearTimeout(pending); };
}
