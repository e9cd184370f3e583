// Keyboard. Every key the page knows is here (and in the help, index.html #help):
//   ← → ↑ ↓ step through the gallery · Space play / stop (the recording, when its view is open) · P / p play / pause
//   the recording · R open the recording of the current clip · 1-9 add the selection to class 1-9 · M mute ·
//   L lasso · 0 fit · Ctrl+Z / Ctrl+Shift+Z / Ctrl+Y undo / redo · ? help · Esc close / clear.
//   Learning (learning.js): T train · F find similar · Shift+1-9 not in class 1-9 · reviewing: A X S B, Esc closes.
import { state, set } from './state.js';
import { actions } from './actions.js';
import { toast } from './toast.js';
import * as recording from './views/recording.js';
import { toggleHelp } from './views/help.js';
import { learningKey } from './learning.js';

function typingIn(t) {
  return t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT' || t.isContentEditable);
}

export function initKeyboard() {
  window.addEventListener('keydown', (e) => {
    const t = e.target;
    if (typingIn(t) && !(t.type === 'range' && (e.key === ' ' || e.key === 'm' || e.key === 'M'))) return;
    if ((e.ctrlKey || e.metaKey) && (e.key === 'z' || e.key === 'Z')) {
      e.preventDefault();
      return e.shiftKey ? actions.redo() : actions.undo();
    }
    if ((e.ctrlKey || e.metaKey) && (e.key === 'y' || e.key === 'Y')) {
      e.preventDefault();
      return actions.redo();
    }
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (!state.helpOpen && learningKey(e)) return; // T F Shift+1…9, and A X S B Esc while reviewing
    switch (e.key) {
      case 'ArrowRight':
      case 'ArrowDown':
        e.preventDefault();
        actions.step(+1);
        break;
      case 'ArrowLeft':
      case 'ArrowUp':
        e.preventDefault();
        actions.step(-1);
        break;
      case ' ':
        e.preventDefault();
        if (state.recordingOpen) recording.togglePlay();
        else actions.togglePlay();
        break;
      case 'p':
      case 'P':
        if (state.recordingOpen) recording.togglePlay();
        else toast('P plays the whole recording: open one first (R, or “recording ▸” in the card)');
        break;
      case 'r':
      case 'R': {
        const i = state.current >= 0 ? state.current : state.pinned;
        if (i >= 0) recording.openForClip(i);
        else toast('R opens the recording of the clip you hear: hover or pin a point first');
        break;
      }
      case 'm':
      case 'M':
        set({ muted: !state.muted });
        break;
      case 'l':
      case 'L':
        set({ lassoMode: !state.lassoMode });
        break;
      case 'Escape':
        if (state.helpOpen) toggleHelp(false);
        else if (state.recordingOpen) recording.close();
        else {
          set({ pinned: -1, lassoMode: false });
          actions.clearFocus();
        }
        break;
      case '?':
        toggleHelp();
        break;
      case '0':
        actions.fit();
        break;
      default:
        if (/^[1-9]$/.test(e.key)) {
          const n = Number(e.key);
          const k = state.classes[n - 1];
          if (k) actions.addToClass(k.id);
          else if (!state.classes.length) toast(`No class ${n} yet: name one in the Classes panel (“+ New class”), then press its number`);
          else toast(`No class ${n}: there ${state.classes.length === 1 ? 'is 1 class' : `are ${state.classes.length} classes`} (keys 1–${Math.min(9, state.classes.length)})`);
        }
    }
  });
}
