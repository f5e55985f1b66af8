// The page shell: sign-in with the API token, and a hash router over the three pages.
import { call, setToken, token } from './api.js';
import { filmsPage } from './films.js';
import { filmPage } from './film.js';
import { poolsPage } from './pools.js';

const page = document.getElementById('page');
const status = document.getElementById('status');
const whoami = document.getElementById('whoami');
const form = document.getElementById('auth');
let stop = () => {};

export function setStatus(text) { status.textContent = text; }

// null: an open server (no token needed); true / false: signed in with a token or not.
function signedIn(state) {
  form.hidden = state === null;
  for (const node of form.querySelectorAll('label, input, button[type="submit"]')) node.hidden = state === true;
  document.getElementById('signout').hidden = state !== true;
}

async function signIn() {
  try {
    const me = await call('api/v1/whoami');
    whoami.textContent = me.open ? 'open server · tenant default' : `tenant ${me.tenant}`;
    signedIn(me.open ? null : true);
    return true;
  } catch (e) {
    whoami.textContent = '';
    signedIn(false);
    setStatus(e.code === 401 ? `Sign in with your API token (${e.message}).` : e.message);
    return false;
  }
}

async function route() {
  stop();
  stop = () => {};
  page.replaceChildren();
  const hash = location.hash || '#/films';
  for (const a of document.querySelectorAll('[data-nav]')) {
    const here = hash.startsWith(`#/${a.dataset.nav}`);
    if (here) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  if (!(await signIn())) return;
  setStatus('');
  const m = hash.match(/^#\/films\/([a-z0-9_-]+)$/);
  if (m) stop = filmPage(page, m[1], setStatus);
  else if (hash.startsWith('#/pools')) stop = poolsPage(page, setStatus);
  else stop = filmsPage(page, setStatus);
}

form.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const input = document.getElementById('token');
  setToken(input.value.trim());
  input.value = '';
  route();
});
document.getElementById('signout').addEventListener('click', () => { setToken(''); route(); });
window.addEventListener('hashchange', () => {
  route();
  document.getElementById('main').focus();
});
route();
