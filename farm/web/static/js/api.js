// The monitor's HTTP client: the bearer token on every request, JSON calls with the
// API's errors, and server-sent events read from fetch() (EventSource cannot send an
// Authorization header), reconnecting with Last-Event-ID.

const KEY = 'reelfarm.token';

export function token() { return sessionStorage.getItem(KEY) || ''; }
export function setToken(value) {
  if (value) sessionStorage.setItem(KEY, value); else sessionStorage.removeItem(KEY);
}

function headers(extra = {}) {
  const h = { ...extra };
  if (token()) h.Authorization = `Bearer ${token()}`;
  return h;
}

export class ApiError extends Error {
  constructor(error) {
    super(error.message || `HTTP ${error.code}`);
    this.status = error.status || 'UNKNOWN';
    this.code = error.code || 0;
  }
}

async function errorOf(res) {
  try {
    const body = await res.json();
    if (body && body.error) return new ApiError(body.error);
  } catch (_) { /* not JSON */ }
  return new ApiError({ code: res.status, message: `HTTP ${res.status}` });
}

export async function call(path, { method = 'GET', body } = {}) {
  const init = { method, headers: headers(), cache: 'no-store' };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  const res = await fetch(path, init);
  if (!res.ok) throw await errorOf(res);
  return res.json();
}

export async function download(path, fileName) {
  const res = await fetch(path, { headers: headers(), cache: 'no-store' });
  if (!res.ok) throw await errorOf(res);
  const url = URL.createObjectURL(await res.blob());
  const a = document.createElement('a');
  a.href = url;
  a.download = fileName;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function parseBlock(block) {
  const msg = { event: 'message', id: null, data: '' };
  let any = false;
  for (const line of block.split('\n')) {
    if (!line || line.startsWith(':')) continue;
    const i = line.indexOf(':');
    const field = i < 0 ? line : line.slice(0, i);
    const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
    if (field === 'event') msg.event = value;
    else if (field === 'id') msg.id = value;
    else if (field === 'data') { msg.data += value; any = true; }
  }
  if (!any) return null;
  msg.data = JSON.parse(msg.data);
  return msg;
}

// Follow an SSE endpoint: onMessage({event, id, data}) for each message; onError(ApiError)
// when the server refuses or reports an error (the stream stops); reconnects after a
// dropped connection from the last id. Returns a function that stops it.
export function follow(path, { onMessage, onError = () => {}, onEnd = () => {} }) {
  const ctl = new AbortController();
  let stopped = false;
  let last = null;
  const finish = (fn, arg) => { stopped = true; fn(arg); };
  async function run() {
    while (!stopped) {
      try {
        const h = headers(last === null ? {} : { 'Last-Event-ID': last });
        const res = await fetch(path, { headers: h, signal: ctl.signal, cache: 'no-store' });
        if (!res.ok) {
          const err = await errorOf(res);
          if (res.status < 500) { finish(onError, err); return; }
        } else {
          const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
          let buf = '';
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buf += value.replace(/\r\n/g, '\n');
            let i;
            while ((i = buf.indexOf('\n\n')) >= 0) {
              const msg = parseBlock(buf.slice(0, i));
              buf = buf.slice(i + 2);
              if (!msg) continue;
              if (msg.id !== null) last = msg.id;
              if (msg.event === 'end') { finish(onEnd); return; }
              if (msg.event === 'error') { finish(onError, new ApiError(msg.data.error)); return; }
              onMessage(msg);
            }
          }
        }
      } catch (e) {
        if (stopped || e.name === 'AbortError') return;
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  run();
  return () => { stopped = true; ctl.abort(); };
}

// ---- formatting shared by the pages ----------------------------------------------------

export function seconds(s) {
  if (s === null || s === undefined) return '—';
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function clock(t) {
  return t ? new Date(t * 1000).toLocaleTimeString() : '—';
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === null || v === undefined) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

export function stateBadge(state) {
  return el('span', { class: `badge state-${state.toLowerCase()}`, text: state });
}
