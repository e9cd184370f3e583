// The test and bench hook, window.__sonomap (docs/ARCHITECTURE.md, "Front end"). This module is the only one that
// writes it, and nothing in the app reads it: it is a read-only window on the state plus a few handles.
import { state } from './state.js';
import { actions } from './actions.js';
import * as recording from './views/recording.js';
import { drawnLabels } from './views/cluster_labels.js';
import * as filtering from './filtering.js';

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
    /** The new clips ringed on the map now: {ids, at (performance.now()), rings (on screen)}. */
    get highlighted() {
      const h = state.highlight;
      return { ids: h.ids.slice(), at: h.at, rings: h.els.filter((e) => !e.hidden && e.isConnected).length };
    },
    /** Cluster names drawn on the map: [{cluster, clip (its centre), text, x, y, rect}] in client coordinates. */
    clusterLabels: () => drawnLabels(),
    /** The linked filters: {ranges, cats (arrays), shown (clips passing them), n}. */
    get filters() {
      const f = state.filters;
      const cats = Object.fromEntries(Object.entries(f.cats).map(([k, v]) => [k, Array.from(v)]));
      return { ranges: { ...f.ranges }, cats, shown: filtering.nShown(), n: state.n, version: f.version };
    },
    /** Learning: the model's summary, the open review, the last similarity result and train round. */
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
