// The render of one film as a Gantt chart (SVG): each finished phase is a bar
// [time - duration, time] coloured by expert, on its unit's row (scenes > units >
// segments) or on the worker that ran it; decodes are bars of their own colour.

const NS = 'http://www.w3.org/2000/svg';
const ROW = 22;
const LABEL = 150;
const AXIS = 24;

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

// Bars of the events: {row keys (both views), start, end, kind, expert, title}.
export function barsOf(plan, events) {
  const bars = [];
  const units = plan.scenes.flatMap((s) => s.units.map((u) => ({ ...u, scene: s.id })));
  for (const e of events) {
    if (e.kind === 'phase') {
      const workers = e.worker_ids.length ? e.worker_ids : ['?'];
      bars.push({
        unit: [e.unit_id], workers, start: e.time - e.duration, end: e.time, kind: 'phase',
        expert: e.expert,
        title: `${e.unit_id} phase ${e.phase_index} (${e.expert}, ${e.num_steps} steps) on ${workers.join(', ')}: ${e.duration.toFixed(2)} s`,
      });
    } else if (e.kind === 'frames') {
      const on = units.filter((u) => u.scene === e.scene_id && u.frame_start < e.frame_stop
        && e.frame_start < u.frame_stop).map((u) => u.id);
      bars.push({
        unit: on, workers: ['decode'], start: e.time - e.duration, end: e.time, kind: 'decode',
        expert: 'decode',
        title: `${e.scene_id} frames ${e.frame_start}..${e.frame_stop - 1} decoded: ${e.duration.toFixed(2)} s`,
      });
    }
  }
  return bars;
}

function rowsOf(plan, bars, by) {
  if (by === 'workers') {
    const ids = [...new Set(bars.flatMap((b) => b.workers))].sort((a, b) =>
      (a === 'decode') - (b === 'decode') || a.localeCompare(b));
    return ids.map((id) => ({ key: id, label: id === 'decode' ? 'decode (VAE)' : id }));
  }
  return plan.scenes.flatMap((s) => s.units.map((u) => ({
    key: u.id,
    label: u.segments.length > 1 ? `${u.id} (${u.segments.length} windows)` : u.id,
    scene: s.id,
  })));
}

function ticks(span) {
  const steps = [0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600];
  const step = steps.find((s) => span / s <= 8) || 7200;
  const out = [];
  for (let t = 0; t <= span + 1e-9; t += step) out.push(t);
  return out;
}

// Draw into `box` (replacing what was there). t0: the film's creation; now: the right
// edge while the film runs.
export function drawGantt(box, plan, events, { by = 'units', t0, now }) {
  const width = Math.max(600, box.clientWidth - 2);
  const bars = barsOf(plan, events);
  const rows = rowsOf(plan, bars, by);
  const index = new Map(rows.map((r, i) => [r.key, i]));
  const end = Math.max(now || 0, ...bars.map((b) => b.end), t0 + 1);
  const span = end - t0;
  const plot = width - LABEL - 10;
  const x = (t) => LABEL + (plot * (t - t0)) / span;
  const height = AXIS + rows.length * ROW + 6;
  const phases = bars.filter((b) => b.kind === 'phase').length;
  const root = svg('svg', {
    viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', class: 'gantt',
    'aria-label': `Render timeline: ${phases} phases and ${bars.length - phases} decodes over ${span.toFixed(1)} s, by ${by}`,
  });
  for (const t of ticks(span)) {
    root.append(svg('line', { x1: x(t0 + t), x2: x(t0 + t), y1: AXIS - 4, y2: height, class: 'tick' }));
    root.append(svg('text', { x: x(t0 + t), y: AXIS - 8, class: 'tick-label', 'text-anchor': 'middle' }, `${t}s`));
  }
  rows.forEach((r, i) => {
    const y = AXIS + i * ROW;
    if (i % 2 === 0) root.append(svg('rect', { x: 0, y, width, height: ROW, class: 'stripe' }));
    root.append(svg('text', { x: 4, y: y + ROW / 2 + 4, class: 'row-label' }, r.label));
  });
  for (const b of bars) {
    const keys = by === 'workers' ? b.workers : b.unit;
    for (const k of keys) {
      if (!index.has(k)) continue;
      const y = AXIS + index.get(k) * ROW + 3;
      const x0 = x(b.start);
      const rect = svg('rect', {
        x: x0, y, width: Math.max(2, x(b.end) - x0), height: ROW - 6, rx: 2,
        class: `bar bar-${b.expert}`, 'data-kind': b.kind, 'data-expert': b.expert, 'data-row': k,
      });
      rect.append(svg('title', {}, b.title));
      root.append(rect);
      if (by === 'units' && b.kind === 'phase' && x(b.end) - x0 > 40) {
        root.append(svg('text', { x: x0 + 3, y: y + ROW - 10, class: 'bar-label' }, b.workers.join(',')));
      }
    }
  }
  box.replaceChildren(root);
  return { bars: bars.length, phases, rows: rows.length };
}
