// Toasts: one short message at a time at the bottom of the map.
import { state } from './state.js';

/** Show `message` for a few seconds (errors stay longer). kind: 'info' | 'error'. */
export function toast(message, kind = 'info') {
  state.stats.lastToast = { message, kind };
  const t = document.getElementById('toast');
  if (!t) return;
  t.textContent = message;
  t.className = `toast ${kind}`;
  t.hidden = false;
  clearTimeout(state.runtime.toastTimer);
  state.runtime.toastTimer = setTimeout(() => (t.hidden = true), kind === 'error' ? 6000 : 3000);
}

/** "1 clip", "12 clips": a count with its noun, in words a person reads. */
export function plural(n, noun, nouns = `${noun}s`) {
  return `${Number(n).toLocaleString('en-US')} ${Number(n) === 1 ? noun : nouns}`;
}
