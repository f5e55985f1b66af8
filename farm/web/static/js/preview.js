// A preview player for frames as they arrive (SSE `frame`: JPEG, film order): plays at
// the film's fps, waits at the newest frame while the film renders, scrubbable.
import { el, follow } from './api.js';

// Frames kept in the page (a long film keeps its latest ones).
const KEEP = 4000;

export function previewPlayer(filmId, fps) {
  let frames = [];
  let first = 0; // film index of frames[0]
  let cur = -1;
  let playing = true;
  let timer = null;
  let stopStream = () => {};
  let ended = false;

  const img = el('img', { class: 'preview', alt: 'No frame yet', width: 320, height: 180 });
  const info = el('p', { class: 'muted small', 'aria-live': 'off', text: 'Waiting for the first frame…' });
  const play = el('button', { type: 'button', 'aria-pressed': 'true', text: 'Pause preview' });
  const slider = el('input', { type: 'range', min: 0, max: 0, value: 0, id: 'preview-frame', disabled: true });
  const box = el('div', { class: 'player' }, img,
    el('div', { class: 'player-controls' }, play,
      el('label', { for: 'preview-frame', text: 'Frame' }), slider), info);

  function show(i) {
    if (i < 0 || i >= frames.length) return;
    cur = i;
    const f = frames[i];
    img.src = f.url;
    img.width = f.width;
    img.height = f.height;
    img.alt = `Scene ${f.scene_id}, frame ${f.index} (film frame ${f.film_index})`;
    img.dataset.filmIndex = String(f.film_index);
    slider.value = String(i);
    info.textContent = `Film frame ${f.film_index} (scene ${f.scene_id} frame ${f.index}); ${first + frames.length} received`;
  }

  function tick() {
    if (playing && cur < frames.length - 1) show(cur + 1);
  }

  play.addEventListener('click', () => {
    playing = !playing;
    play.textContent = playing ? 'Pause preview' : 'Play preview';
    play.setAttribute('aria-pressed', String(playing));
  });
  slider.addEventListener('input', () => {
    playing = false;
    play.textContent = 'Play preview';
    play.setAttribute('aria-pressed', 'false');
    show(Number(slider.value));
  });

  function start() {
    stopStream();
    frames = [];
    first = 0;
    cur = -1;
    ended = false;
    stopStream = follow(`api/v1/films/${filmId}/frames`, {
      onMessage: ({ data }) => {
        frames.push({ ...data, url: `data:${data.mime};base64,${data.data}` });
        if (frames.length > KEEP) { frames.shift(); first += 1; cur -= 1; }
        slider.max = String(frames.length - 1);
        slider.disabled = false;
        if (cur < 0) show(0);
      },
      onError: (e) => { ended = true; info.textContent = `No more frames: ${e.message}`; },
      onEnd: () => { ended = true; },
    });
  }

  timer = setInterval(tick, 1000 / Math.max(1, Math.min(fps, 60)));
  start();
  return {
    box,
    restart: start,
    ended: () => ended,
    stop: () => { stopStream(); clearInterval(timer); },
  };
}
