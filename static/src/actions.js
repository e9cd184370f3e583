// What the page does: listening, focusing, colouring, clustering jobs, pooling. Views call these; they write state.
import { state, set, subscribe } from './state.js';
import { api } from './api.js';
import { requestCluster, toInt32 } from './socket.js';
import { playbackOf } from './clips.js';
import { encodeClusters, encodeColumn, colorAt, MISSING } from './colors.js';

let map = null;
let player = null;

/** Test and bench hook (see docs/ARCHITECTURE.md, "Front end"). */
export const hook = {
  lastPlayback: null,
  playbacks: 0,
  ready: false,
  firstPointsMs: null,
  pointsDrawn: 0,
  clusterResults: 0,
  lastResult: null,
  colorVersion: 0,
  state,
};
window.__sonomap = hook;

// ------------------------------------------------------------------------------------------------
// toasts

let toastTimer = null;
export function toast(message, kind = 'info') {
  const t = document.getElementById('toast');
  if (!t) return;
  t.textContent = message;
  t.className = `toast ${kind}`;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (t.hidden = true), kind === 'error' ? 6000 : 2500);
}

// ------------------------------------------------------------------------------------------------
// audio prefetch: a coarse grid of which sprites the points in each map cell need

const GRID = 32;
let grid = null; // Array(GRID*GRID) of [sprite, count][] sorted by count
let spriteBytes = new Map();

function cellOf(x, y) {
  const gx = Math.max(0, Math.min(GRID - 1, Math.floor(((x + 1) / 2) * GRID)));
  const gy = Math.max(0, Math.min(GRID - 1, Math.floor(((y + 1) / 2) * GRID)));
  return [gx, gy];
}

function buildPrefetchGrid() {
  const { nx, ny, clips } = state;
  if (!nx || !clips || !clips.audio_sprite) return;
  const cells = Array.from({ length: GRID * GRID }, () => new Map());
  const rate = Number(state.config.audio_sample_rate || 22050);
  const ctxRate = player.ctx.sampleRate;
  spriteBytes = new Map();
  const total = new Map();
  for (let i = 0; i < nx.length; i++) {
    const s = clips.audio_sprite[i];
    const [gx, gy] = cellOf(nx[i], ny[i]);
    const m = cells[gy * GRID + gx];
    m.set(s, (m.get(s) || 0) + 1);
    total.set(s, (total.get(s) || 0) + 1);
    const end = Number(clips.audio_offset[i]) + Number(clips.audio_length[i]);
    const bytes = (end / rate) * ctxRate * 4;
    if (bytes > (spriteBytes.get(s) || 0)) spriteBytes.set(s, bytes);
  }
  grid = cells.map((m) => [...m.entries()].sort((a, b) => b[1] - a[1]));
  // Small collections: decode everything up front (most used first). Large ones: the busiest sprites,
  // then whatever is around the pointer as it moves.
  const order = [...total.entries()].sort((a, b) => b[1] - a[1]).map(([s]) => s);
  player.prefetch(order, (s) => spriteBytes.get(s));
}

function prefetchAround(x, y) {
  if (!grid) return;
  const [gx, gy] = cellOf(x, y);
  const counts = new Map();
  for (let dy = -1; dy <= 1; dy++) {
    for (let dx = -1; dx <= 1; dx++) {
      const cx = gx + dx;
      const cy = gy + dy;
      if (cx < 0 || cy < 0 || cx >= GRID || cy >= GRID) continue;
      const w = dx === 0 && dy === 0 ? 3 : 1;
      for (const [s, c] of grid[cy * GRID + cx]) counts.set(s, (counts.get(s) || 0) + c * w);
    }
  }
  const order = [...counts.entries()].sort((a, b) => b[1] - a[1]).map(([s]) => s);
  player.prefetch(order.slice(0, 12), (s) => spriteBytes.get(s));
}

// ------------------------------------------------------------------------------------------------
// gallery order: typical members first (closest to the medoid on the map), outliers last

function typicalOrder(ids, medoid = null) {
  const xy = state.xy;
  if (!ids.length) return new Int32Array(0);
  let mx;
  let my;
  if (Number.isInteger(medoid) && medoid >= 0 && medoid < state.n) {
    mx = xy[2 * medoid];
    my = xy[2 * medoid + 1];
  } else {
    let sx = 0;
    let sy = 0;
    for (const i of ids) {
      sx += xy[2 * i];
      sy += xy[2 * i + 1];
    }
    const cx = sx / ids.length;
    const cy = sy / ids.length;
    let best = Infinity;
    for (const i of ids) {
      const d = (xy[2 * i] - cx) ** 2 + (xy[2 * i + 1] - cy) ** 2;
      if (d < best) {
        best = d;
        mx = xy[2 * i];
        my = xy[2 * i + 1];
      }
    }
  }
  const d = new Float64Array(ids.length);
  for (let k = 0; k < ids.length; k++) d[k] = (xy[2 * ids[k]] - mx) ** 2 + (xy[2 * ids[k] + 1] - my) ** 2;
  const idx = Array.from(ids.keys()).sort((a, b) => d[a] - d[b]);
  return Int32Array.from(idx, (k) => ids[k]);
}

function membersOfCluster(k) {
  const labels = state.cluster.labels;
  const out = [];
  for (let i = 0; i < labels.length; i++) if (labels[i] === k) out.push(i);
  return out;
}

function clusterInfo(k) {
  return (state.cluster && (state.cluster.result.clusters || []).find((c) => c.id === k)) || null;
}

// ------------------------------------------------------------------------------------------------
// clustering jobs

let currentJob = null;
let sending = false; // a cluster request is waiting for its ack
let resend = false; // the request changed meanwhile
const early = new Map(); // job_id -> result that arrived before its ack

function applyResult(m) {
  const labels = toInt32(m.labels);
  if (labels.length !== state.n) {
    toast(`Clustering result has ${labels.length} labels for ${state.n} clips`, 'error');
    return;
  }
  const focus = state.focus && state.focus.kind === 'cluster' ? null : state.focus;
  set({
    cluster: { labels, result: m, request: m.request },
    job: { job_id: m.job_id, state: 'done', fraction: 1, message: m.cached ? 'cached' : `${(m.elapsed_s ?? 0).toFixed(2)} s` },
  });
  if (!focus && state.focus) actions.clearFocus();
  hook.clusterResults++;
  hook.lastResult = { job_id: m.job_id, n_clusters: m.n_clusters, n_noise: m.n_noise, request: m.request };
  if (state.colorBy === 'cluster') actions.recolor();
}

// ------------------------------------------------------------------------------------------------

let sequenceTimer = null;
let classesRefresh = null;

export const actions = {
  init(o) {
    map = o.map;
    player = o.player;
    hook.pointToScreen = (i) => map.pointToScreen(i);
    hook.map = map;
    subscribe(['current', 'pinned'], (st) => map.setMarkers(st.current, st.pinned));
    hook.actions = actions;
    player.onEnded = () => {};
    let last = 0;
    map.plot.get('canvas').addEventListener(
      'pointermove',
      (e) => {
        if (e.timeStamp - last < 120) return;
        last = e.timeStamp;
        const [x, y] = map.screenToData(e.clientX, e.clientY);
        prefetchAround(x, y);
      },
      { passive: true },
    );
  },

  afterClipsLoaded() {
    buildPrefetchGrid();
    actions.recolor();
  },

  // listening ------------------------------------------------------------------------------------
  playClip(i, tEvent = performance.now(), tHandler = performance.now()) {
    if (!state.clips || i < 0) return null;
    const p = player.play(playbackOf(i), tEvent, tHandler);
    p.then((rec) => {
      if (rec) {
        hook.lastPlayback = rec;
        hook.playbacks++;
      }
    });
    return p;
  },

  hoverPoint(i, tEvent, tHandler) {
    if (state.playingSequence) actions.stopSequence();
    actions.playClip(i, tEvent, tHandler);
    set({ hovered: i, current: i });
  },

  leavePoint() {
    if (state.hovered < 0) return;
    set({ hovered: -1 });
  },

  pin(i) {
    set({ pinned: state.pinned === i ? -1 : i, current: i });
    map.select(state.focus ? state.focus.ids : []);
  },

  zoomTo(ids) {
    map.zoomTo(ids);
  },

  fit() {
    map.fit();
  },

  stopAudio() {
    actions.stopSequence();
    player.stop();
  },

  // focus (what the gallery shows and what "add to class" adds) ----------------------------------
  setFocus(focus) {
    if (!focus || !focus.ids || !focus.ids.length) return actions.clearFocus();
    const order = focus.order || typicalOrder(focus.ids, focus.medoid ?? null);
    set({ focus, galleryOrder: order, galleryIndex: -1 });
    map.select(focus.ids);
    // Decode the first members' audio now: the gallery is where people listen next.
    const sprites = [];
    for (const i of state.clips ? order.slice(0, 60) : []) {
      const s = state.clips.audio_sprite[i];
      if (!sprites.includes(s)) sprites.push(s);
    }
    player.prefetch(sprites, (s) => spriteBytes.get(s));
  },

  clearFocus() {
    if (state.playingSequence) actions.stopSequence();
    set({ focus: null, galleryOrder: null, galleryIndex: -1 });
    map.select([]);
  },

  lassoSelect(ids) {
    if (!ids || !ids.length) return;
    actions.setFocus({ kind: 'lasso', label: `Lasso selection`, ids: Int32Array.from(ids) });
    if (state.lassoMode) set({ lassoMode: false });
  },

  /** Focus one cluster, or toggle it into a multi-cluster focus when additive. */
  focusCluster(k, additive = false) {
    if (!state.cluster) return;
    let clusterIds = [k];
    if (additive && state.focus && state.focus.kind === 'cluster') {
      const cur = state.focus.clusterIds;
      clusterIds = cur.includes(k) ? cur.filter((c) => c !== k) : [...cur, k];
    }
    if (!clusterIds.length) return actions.clearFocus();
    const parts = clusterIds.map((c) => {
      const info = clusterInfo(c);
      return typicalOrder(membersOfCluster(c), info ? info.medoid : null);
    });
    const order = new Int32Array(parts.reduce((s, p) => s + p.length, 0));
    let o = 0;
    for (const p of parts) {
      order.set(p, o);
      o += p.length;
    }
    const label =
      clusterIds.length === 1
        ? k < 0
          ? 'Noise'
          : `Cluster ${k}`
        : `Clusters ${clusterIds.slice().sort((a, b) => a - b).join(', ')}`;
    actions.setFocus({ kind: 'cluster', label, ids: Int32Array.from(order).sort(), order, clusterIds });
  },

  focusCategory(item) {
    const codes = state.legend && state.legend.codes;
    if (!codes) return;
    const ids = [];
    for (let i = 0; i < codes.length; i++) if (codes[i] === item.code) ids.push(i);
    actions.setFocus({ kind: 'category', label: `${state.colorBy}: ${item.label}`, ids: Int32Array.from(ids) });
  },

  focusClass(classId) {
    const k = state.classes.find((c) => c.id === classId);
    const ids = (state.members[classId] || state.members[String(classId)] || []).slice();
    if (!k) return;
    if (!ids.length) {
      set({ focus: { kind: 'class', classId, label: k.name, ids: new Int32Array(0) }, galleryOrder: new Int32Array(0) });
      map.select([]);
      return;
    }
    actions.setFocus({ kind: 'class', classId, label: k.name, ids: Int32Array.from(ids) });
  },

  // stepping and sequences ------------------------------------------------------------------------
  step(delta) {
    const order = state.galleryOrder;
    if (!order || !order.length) return;
    if (state.playingSequence) actions.stopSequence();
    let j = state.galleryIndex + delta;
    if (state.galleryIndex < 0) j = delta > 0 ? 0 : order.length - 1;
    j = Math.max(0, Math.min(order.length - 1, j));
    actions.playGalleryIndex(j);
  },

  playGalleryIndex(j, tEvent = performance.now()) {
    const i = state.galleryOrder[j];
    set({ galleryIndex: j, current: i });
    map.hover(i);
    return actions.playClip(i, tEvent);
  },

  /** Space: with a gallery, play it from the current member on (or stop it); without one, play/stop the clip. */
  togglePlay() {
    if (state.playingSequence) return actions.stopAudio();
    if (state.galleryOrder && state.galleryOrder.length) {
      return actions.playSequence(state.galleryIndex >= 0 ? state.galleryIndex : 0);
    }
    if (player.playing) return actions.stopAudio();
    const i = state.current >= 0 ? state.current : state.pinned;
    if (i >= 0) actions.playClip(i);
  },

  playSequence(from = null) {
    const order = state.galleryOrder;
    if (!order || !order.length) return;
    let j = from ?? (state.galleryIndex >= 0 && state.galleryIndex < order.length - 1 ? state.galleryIndex : 0);
    set({ playingSequence: true });
    const next = () => {
      if (!state.playingSequence || !state.galleryOrder || j >= state.galleryOrder.length) {
        return actions.stopSequence();
      }
      const k = j++;
      const i = state.galleryOrder[k];
      const dur = playbackOf(i).duration_s;
      Promise.resolve(actions.playGalleryIndex(k)).then(() => {
        if (!state.playingSequence) return;
        sequenceTimer = setTimeout(next, dur * 1000 + 120);
      });
    };
    next();
  },

  stopSequence() {
    clearTimeout(sequenceTimer);
    if (state.playingSequence) {
      set({ playingSequence: false });
      player.stop();
    }
  },

  // colour ----------------------------------------------------------------------------------------
  recolor() {
    if (!state.nx) return;
    if (!state.clips && state.colorBy !== 'cluster') return; // the clip table is still on its way
    let enc;
    const by = state.colorBy;
    if (by === 'cluster') {
      if (!state.cluster) {
        enc = { codes: new Float32Array(state.n), colors: ['#8fa3c7'], items: [], noiseCode: -1, pending: true };
      } else {
        enc = encodeClusters(state.cluster.labels, state.cluster.result.clusters);
      }
    } else if (by === 'class') {
      enc = encodeClasses();
    } else {
      enc = encodeColumn(state.clips[by] || []);
    }
    set({ legend: { ...enc, by } });
    const hide = state.hideNoise && (by === 'cluster' || by === 'class') && enc.items.some((it) => it.code === 0);
    map.setColors(enc.codes, enc.colors).then(() => {
      if (hide) {
        const keep = [];
        for (let i = 0; i < enc.codes.length; i++) if (enc.codes[i] !== 0) keep.push(i);
        map.setFilter(keep);
      } else {
        map.setFilter(null);
      }
      if (state.focus) map.select(state.focus.ids);
      hook.colorVersion++;
    });
  },

  setColorBy(by) {
    set({ colorBy: by });
    actions.recolor();
  },

  setHideNoise(on) {
    set({ hideNoise: on });
    actions.recolor();
  },

  // clustering ------------------------------------------------------------------------------------
  setClusterRequest(req, { run = true } = {}) {
    set({ clusterRequest: req });
    if (run) actions.runClustering();
  },

  /**
   * Send the latest clustering request. One request is in flight at a time: the server may handle two events
   * of one client in either order, and "a new request cancels the previous job" must see them in order. A slider
   * moved while a request is on its way sends only its latest value, as soon as the ack is back.
   */
  async runClustering() {
    if (!state.clusterRequest) return;
    if (sending) {
      resend = true;
      return;
    }
    sending = true;
    try {
      do {
        resend = false;
        const req = state.clusterRequest;
        set({ job: { job_id: null, state: 'running', fraction: 0, message: 'starting…' } });
        const ack = await requestCluster(req);
        if (resend) continue; // superseded while on its way: the server cancels it when the next one arrives
        if (!ack || !ack.ok) {
          const allowed = ack && ack.allowed ? ` (allowed: ${JSON.stringify(ack.allowed)})` : '';
          set({ job: { job_id: null, state: 'error', fraction: 0, message: (ack && ack.error) || 'failed' } });
          toast(`Clustering: ${(ack && ack.error) || 'failed'}${allowed}`, 'error');
          break;
        }
        currentJob = ack.job_id;
        if (early.has(currentJob)) {
          const m = early.get(currentJob);
          early.clear();
          applyResult(m);
        } else if (!state.job || state.job.state !== 'done' || state.job.job_id !== currentJob) {
          set({ job: { job_id: currentJob, state: 'running', fraction: 0, message: ack.cached ? 'cached' : 'queued' } });
        }
      } while (resend);
    } finally {
      sending = false;
    }
  },

  onJobProgress(m) {
    if (m.job_id !== currentJob) return;
    set({
      job: {
        job_id: m.job_id,
        state: 'running',
        fraction: m.fraction ?? (m.total ? m.done / m.total : 0),
        message: m.message || m.stage || '',
      },
    });
  },

  onJobResult(m) {
    if (m.kind && m.kind !== 'cluster') return;
    if (m.collection && m.collection !== state.collection) return;
    if (m.job_id !== currentJob) {
      early.set(m.job_id, m);
      if (early.size > 8) early.delete(early.keys().next().value);
      return;
    }
    applyResult(m);
  },

  onJobError(m) {
    if (m.job_id !== currentJob) return;
    set({ job: { job_id: m.job_id, state: 'error', fraction: 0, message: m.error } });
    toast(`Clustering failed: ${m.error}`, 'error');
  },

  onJobCancelled(m) {
    if (m.job_id !== currentJob) return;
    set({ job: { job_id: m.job_id, state: 'cancelled', fraction: 0, message: 'cancelled' } });
  },

  // pooling ---------------------------------------------------------------------------------------
  async refreshClasses() {
    if (!state.collection) return;
    try {
      const r = await api.classes(state.collection);
      const members = r.members || {};
      const membership = new Map();
      for (const [cid, ids] of Object.entries(members)) {
        const id = isNaN(Number(cid)) ? cid : Number(cid);
        for (const i of ids) {
          const m = membership.get(i);
          if (m) m.push(id);
          else membership.set(i, [id]);
        }
      }
      set({ classes: r.classes || [], members, membership, canUndo: !!r.can_undo, canRedo: !!r.can_redo });
      if (state.focus && state.focus.kind === 'class') actions.focusClass(state.focus.classId);
      if (state.colorBy === 'class') actions.recolor();
    } catch (e) {
      if (e.status !== 404) toast(`Classes: ${e.message}`, 'error');
    }
  },

  onLabelsChanged(m) {
    if (m && m.collection && m.collection !== state.collection) return;
    clearTimeout(classesRefresh);
    classesRefresh = setTimeout(() => actions.refreshClasses(), 60);
  },

  async mutate(fn, okMessage) {
    try {
      await fn();
      await actions.refreshClasses();
      if (okMessage) toast(okMessage);
      return true;
    } catch (e) {
      toast(e.message, 'error');
      return false;
    }
  },

  createClass(name) {
    name = (name || '').trim();
    if (!name) return Promise.resolve(false);
    return actions.mutate(() => api.createClass(state.collection, name), `Class “${name}” created`);
  },

  renameClass(id, name) {
    name = (name || '').trim();
    if (!name) return Promise.resolve(false);
    return actions.mutate(() => api.updateClass(state.collection, id, { name }));
  },

  deleteClass(id) {
    const k = state.classes.find((c) => c.id === id);
    if (state.focus && state.focus.kind === 'class' && state.focus.classId === id) actions.clearFocus();
    return actions.mutate(() => api.deleteClass(state.collection, id), k ? `Deleted “${k.name}”` : null);
  },

  /** What "add to class" would add now: the focus (cluster(s), lasso, category), else the pinned clip. */
  addTarget() {
    const f = state.focus;
    if (f && f.ids.length && f.kind !== 'class') return f;
    const i = state.pinned >= 0 ? state.pinned : -1;
    if (i >= 0) return { kind: 'clip', label: `clip ${i}`, ids: Int32Array.of(i) };
    return null;
  },

  async addToClass(classId, target = actions.addTarget()) {
    if (!target || !target.ids.length) {
      toast('Select a cluster (legend), lasso some points or pin a clip first');
      return false;
    }
    const k = state.classes.find((c) => c.id === classId);
    const c = state.collection;
    const params = state.cluster ? state.cluster.request : undefined;
    return actions.mutate(async () => {
      if (target.kind === 'cluster') {
        // One request for several clusters, so one undo takes the whole addition back.
        const ids = target.clusterIds.length === 1 ? membersOfCluster(target.clusterIds[0]) : target.ids;
        const source = { kind: 'cluster', cluster_id: target.clusterIds[0], params: { ...(params || {}), cluster_ids: target.clusterIds } };
        await api.addMembers(c, classId, ids, source);
      } else if (target.kind === 'clip') {
        await api.addMembers(c, classId, target.ids, { kind: 'clip' });
      } else {
        await api.addMembers(c, classId, target.ids, { kind: 'lasso' });
      }
    }, `Added ${target.ids.length} clip${target.ids.length === 1 ? '' : 's'} to “${k ? k.name : classId}”`);
  },

  removeFromClass(classId, ids) {
    const n = ids.length;
    return actions.mutate(() => api.removeMembers(state.collection, classId, ids), n > 1 ? `Removed up to ${n} clips` : null);
  },

  undo() {
    return actions.mutate(() => api.undo(state.collection), 'Undone');
  },

  redo() {
    return actions.mutate(() => api.redo(state.collection), 'Redone');
  },
};

function encodeClasses() {
  const n = state.n;
  const codes = new Float32Array(n);
  const colors = [MISSING];
  const items = [];
  const counts = new Int32Array(state.classes.length + 1);
  const codeOf = new Map();
  state.classes.forEach((k, j) => {
    codeOf.set(k.id, j + 1);
    colors.push(k.color || colorAt(j));
  });
  for (const [i, ids] of state.membership) {
    if (i >= n) continue;
    const code = codeOf.get(ids[ids.length - 1]) || 0;
    codes[i] = code;
  }
  for (let i = 0; i < n; i++) counts[codes[i]]++;
  state.classes.forEach((k, j) => {
    items.push({ key: k.id, label: k.name, color: colors[j + 1], count: counts[j + 1], code: j + 1, kind: 'class' });
  });
  items.push({ key: null, label: 'unlabelled', color: MISSING, count: counts[0], code: 0, kind: 'missing' });
  return { codes, colors, items, noiseCode: 0 };
}
