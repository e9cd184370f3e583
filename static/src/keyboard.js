// Keyboard: arrows step through the gallery, space plays/stops, 1-9 add to class, m mutes, l lasso, esc clears.
import { state, set } from './state.js';
import { actions } from './actions.js';

export function initKeyboard() {
  window.addEventListener('keydown', (e) => {
    const t = e.target;
    if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT' || t.isContentEditable)) {
      if (!(t.type === 'range' && (e.key === ' ' || e.key === 'm'))) return;
    }
    if ((e.ctrlKey || e.metaKey) && (e.key === 'z' || e.key === 'Z')) {
      e.preventDefault();
      return e.shiftKey ? actions.redo() : actions.undo();
    }
    if ((e.ctrlKey || e.metaKey) && (e.key === 'y' || e.key === 'Y')) {
      e.preventDefault();
      return actions.redo();
    }
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const ts = e.timeStamp;
    switch (e.key) {
      case 'ArrowRight':
      case 'ArrowDown':
        e.preventDefault();
        actions.step(+1, ts);
        break;
      case 'ArrowLeft':
      case 'ArrowUp':
        e.preventDefault();
        actions.step(-1, ts);
        break;
      case ' ':
        e.preventDefault();
        actions.togglePlay();
        break;
      case 'm':
      case 'M':
        set({ muted: !state.muted });
        break;
      case 'l':
      case 'L':
        set({ lassoMode: !state.lassoMode });
        break;
      case 'Escape':
        document.getElementById('help').hidden = true;
        set({ pinned: -1, lassoMode: false });
        actions.clearFocus();
        break;
      case '?':
        document.getElementById('help').hidden = !document.getElementById('help').hidden;
        break;
      case '0':
        actions.fit();
        break;
      default:
        if (/^[1-9]$/.test(e.key)) {
          const k = state.classes[Number(e.key) - 1];
          if (k) actions.addToClass(k.id);
        }
    }
  });
}
