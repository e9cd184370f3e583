// The test and bench hook, window.__sonomap (docs/ARCHITECTURE.md, "Front end"). This module is the only one that
// writes it, and nothing in the app reads it: it is a read-only window on the state plus a few handles.
import { state } from './state.js';
import { actions } from './actions.js';
import * as recording from './views/recording.js';

export function installHook() {
  const s = state.stats;
  const hook = {
    state,
    actions,
    get ready() {
      return s.ready;
    },
    get bootMs() {
      return s.bootMs;
    },
    get firstPointsMs() {
      return s.firstPointsMs;
    },
    get clipsLoadedMs() {
      return s.clipsLoadedMs;
    },
    get pointsDrawn() {
      return s.pointsDrawn;
    },
    get playbacks() {
      return s.playbacks;
    },
    get lastPlayback() {
      return s.lastPlayback;
    },
    get clusterResults() {
      return s.clusterResults;
    },
    get lastResult() {
      return s.lastResult;
    },
    get colorVersion() {
      return s.colorVersion;
    },
    get lastToast() {
      return s.lastToast;
    },
    get map() {
      return state.runtime.map;
    },
    get player() {
      return state.runtime.player;
    },
    get upload() {
      return state.upload;
    },
    /** Learning (issue 11): the model's summary, the open review, the last similarity result and train round. */
    get learning() {
      return { model: state.learnModel, review: state.review, slice: state.learning, lastSimilar: s.lastSimilar || null, lastTrain: s.lastTrain || null };
    },
    /** Client (page) coordinates of point i, or null when it is off screen. */
    pointToScreen: (i) => state.runtime.map.pointToScreen(i),
    /** Output level of everything the page plays (RMS of the last ~10 ms, 0..1, after volume and mute). */
    outputLevel: () => (state.runtime.player ? state.runtime.player.outputLevel() : 0),
    recording: {
      open: (clipId) => recording.openForClip(clipId),
      close: () => recording.close(),
      get state() {
        const r = state.recording;
        const el = r.el || {};
        return {
          open: state.recordingOpen,
          recordingId: r.recordingId,
          tileS: r.tileS,
          pxPerS: r.pxPerS,
          currentClip: r.currentClip,
          follow: r.follow,
          currentTime: el.audio ? el.audio.currentTime : 0,
          paused: el.audio ? el.audio.paused : true,
          playheadX: el.playhead ? parseFloat(el.playhead.style.left) || 0 : 0,
          routed: !!r.source,
        };
      },
      get audio() {
        return state.recording.el ? state.recording.el.audio : null;
      },
    },
  };
  window.__sonomap = hook;
  return hook;
}
