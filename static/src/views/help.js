// The help: every key and gesture (index.html #help). It opens by itself on a person's first visit.
import { state, set, subscribe } from '../state.js';

export const SEEN_HELP_KEY = 'sonomap:seen-help';

/** Open (true), close (false) or toggle (undefined) the help. */
export function toggleHelp(open = !state.helpOpen) {
  set({ helpOpen: open });
}

export function initHelp(root, toggleButton, closeButton) {
  subscribe('helpOpen', (s) => {
    root.hidden = !s.helpOpen;
    if (!s.helpOpen) {
      try {
        localStorage.setItem(SEEN_HELP_KEY, '1');
      } catch {}
    }
  });
  toggleButton.onclick = () => toggleHelp();
  closeButton.onclick = () => toggleHelp(false);
  root.onclick = (e) => {
    if (e.target === root) toggleHelp(false);
  };
  let seen = true;
  try {
    seen = !!localStorage.getItem(SEEN_HELP_KEY);
  } catch {}
  if (!seen) toggleHelp(true);
}
