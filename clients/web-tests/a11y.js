// Accessibility basics, measured in the browser itself: every control's accessible name
// as Chromium computes it (the DevTools accessibility tree), and which controls the Tab
// key reaches.
'use strict';

const CONTROL_ROLES = new Set(['button', 'link', 'textbox', 'spinbutton', 'combobox', 'slider',
  'checkbox', 'radio', 'searchbox', 'switch', 'menuitem', 'tab', 'image', 'img', 'meter',
  'progressbar']);

// {checked, unnamed: [role/tag descriptions], lang, images_without_alt}
async function accessibility(page) {
  const cdp = await page.context().newCDPSession(page);
  const { nodes } = await cdp.send('Accessibility.getFullAXTree');
  await cdp.detach();
  const controls = nodes.filter((n) => !n.ignored && n.role && CONTROL_ROLES.has(n.role.value));
  const unnamed = controls.filter((n) => !(n.name && String(n.name.value || '').trim()))
    .map((n) => `${n.role.value} (${n.backendDOMNodeId})`);
  const dom = await page.evaluate(() => ({
    lang: document.documentElement.lang,
    images_without_alt: [...document.querySelectorAll('img:not([alt])')].length,
    inputs_without_label: [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
      .filter((i) => !(i.labels && i.labels.length) && !i.getAttribute('aria-label')).map((i) => i.id || i.name),
  }));
  return { checked: controls.length, roles: [...new Set(controls.map((n) => n.role.value))].sort(), unnamed, ...dom };
}

// Runs in the page: a stable key of every focusable control (DOM order), or of the
// focused one. (Defined inside the function Playwright sends: the page's CSP forbids eval.)
function controlsInPage(focusedOnly) {
  const keyOf = (el) => {
    if (!el || el === document.body || el === document.documentElement) return null;
    const label = (el.getAttribute('aria-label') || el.textContent || '').trim().slice(0, 40);
    return `${el.tagName.toLowerCase()}|${el.id}|${el.getAttribute('href') || ''}|${label}`;
  };
  if (focusedOnly) return keyOf(document.activeElement);
  const sel = 'a[href], button, input:not([type=hidden]), select, textarea, summary, [tabindex]';
  return [...document.querySelectorAll(sel)].filter((el) => {
    const visible = el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
    return visible && !el.disabled && el.tabIndex >= 0 && !el.closest('[hidden]');
  }).map(keyOf);
}

// {focusable: [keys in DOM order], reached: [keys Tab focused], missing: [...]}
async function tabOrder(page) {
  const focusable = await page.evaluate(controlsInPage, false);
  await page.evaluate(() => { if (document.activeElement) document.activeElement.blur(); window.scrollTo(0, 0); });
  const reached = [];
  for (let i = 0; i < focusable.length + 5; i += 1) {
    await page.keyboard.press('Tab');
    const k = await page.evaluate(controlsInPage, true);
    if (k && k === reached[0]) break; // wrapped around
    if (k && !reached.includes(k)) reached.push(k);
  }
  const missing = focusable.filter((k) => !reached.includes(k));
  return { focusable, reached, missing };
}

module.exports = { accessibility, tabOrder };
