// Listening: hover a point to hear it, pin it, step through the gallery, play the gallery in order.
// Every sound goes through the one player (audio/player.js): one voice at a time, one volume, one mute.
import { state, set } from './state.js';
import { playbackOf } from './clips.js';

/** Play clip i now. tEvent/tHandler: when the input event happened and when the page began handling it. */
export function playClip(i, tEvent = performance.now(), tHandler = performance.now()) {
  if (!state.clips || i < 0) return null;
  const p = state.runtime.player.play(playbackOf(i), tEvent, tHandler);
  p.then((rec) => {
    if (rec) {
      state.stats.lastPlayback = rec;
      state.stats.playbacks++;
    }
  });
  return p;
}

export function hoverPoint(i, tEvent, tHandler) {
  if (state.playingSequence) stopSequence();
  playClip(i, tEvent, tHandler);
  set({ hovered: i, current: i });
}

export function leavePoint() {
  if (state.hovered < 0) return;
  set({ hovered: -1 });
}

export function pin(i) {
  set({ pinned: state.pinned === i ? -1 : i, current: i });
  state.runtime.map.select(state.focus ? state.focus.ids : []);
}

export function stopAudio() {
  stopSequence();
  state.runtime.player.stop();
}

/** Arrow keys: play the next (delta +1) or previous (-1) gallery member. */
export function step(delta) {
  const order = state.galleryOrder;
  if (!order || !order.length) return;
  if (state.playingSequence) stopSequence();
  let j = state.galleryIndex + delta;
  if (state.galleryIndex < 0) j = delta > 0 ? 0 : order.length - 1;
  j = Math.max(0, Math.min(order.length - 1, j));
  playGalleryIndex(j);
}

export function playGalleryIndex(j, tEvent = performance.now()) {
  const i = state.galleryOrder[j];
  set({ galleryIndex: j, current: i });
  state.runtime.map.hover(i);
  return playClip(i, tEvent);
}

/** Space (no recording open): with a gallery, play it from the current member on (or stop); else play/stop the clip. */
export function togglePlay() {
  if (state.playingSequence) return stopAudio();
  if (state.galleryOrder && state.galleryOrder.length) {
    return playSequence(state.galleryIndex >= 0 ? state.galleryIndex : 0);
  }
  if (state.runtime.player.playing) return stopAudio();
  const i = state.current >= 0 ? state.current : state.pinned;
  if (i >= 0) playClip(i);
}

/** Play the gallery's members one after another from index `from` (else from the current one). */
export function playSequence(from = null) {
  const order = state.galleryOrder;
  if (!order || !order.length) return;
  let j = from ?? (state.galleryIndex >= 0 && state.galleryIndex < order.length - 1 ? state.galleryIndex : 0);
  set({ playingSequence: true });
  const next = () => {
    if (!state.playingSequence || !state.galleryOrder || j >= state.galleryOrder.length) return stopSequence();
    const k = j++;
    const dur = playbackOf(state.galleryOrder[k]).duration_s;
    Promise.resolve(playGalleryIndex(k)).then(() => {
      if (!state.playingSequence) return;
      state.runtime.sequenceTimer = setTimeout(next, dur * 1000 + 120);
    });
  };
  next();
}

export function stopSequence() {
  clearTimeout(state.runtime.sequenceTimer);
  if (state.playingSequence) {
    set({ playingSequence: false });
    state.runtime.player.stop();
  }
}
