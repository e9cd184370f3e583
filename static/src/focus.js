// The focus: what the gallery shows and what "add to class" adds (a cluster or several, a lasso, a category, a class).
import { state, set } from './state.js';
import { typicalOrder, membersOfCluster, clusterInfo } from './geometry.js';
import { prefetchClips } from './prefetch.js';
import { stopSequence } from './listening.js';
import { filterOrder } from './filtering.js';

/** Focus `{kind, label, ids: Int32Array, order?, medoid?, clusterIds?, classId?}`; empty ids clear the focus. */
export function setFocus(focus) {
  if (!focus || !focus.ids || !focus.ids.length) return clearFocus();
  const order = focus.order || typicalOrder(focus.ids, focus.medoid ?? null);
  focus.fullOrder = order; // the gallery shows the clips of it that pass the filters (filtering.js)
  set({ focus, galleryOrder: filterOrder(order), galleryIndex: -1 });
  state.runtime.map.select(focus.ids);
  prefetchClips(order.slice(0, 60));
}

export function clearFocus() {
  if (state.playingSequence) stopSequence();
  set({ focus: null, galleryOrder: null, galleryIndex: -1 });
  state.runtime.map.select([]);
}

export function lassoSelect(ids) {
  if (!ids || !ids.length) return;
  setFocus({ kind: 'lasso', label: 'Lasso selection', ids: Int32Array.from(ids) });
  if (state.lassoMode) set({ lassoMode: false });
}

/** Focus one cluster, or toggle it into a multi-cluster focus when additive (Shift/Ctrl-click). */
export function focusCluster(k, additive = false) {
  if (!state.cluster) return;
  let clusterIds = [k];
  if (additive && state.focus && state.focus.kind === 'cluster') {
    const cur = state.focus.clusterIds;
    clusterIds = cur.includes(k) ? cur.filter((c) => c !== k) : [...cur, k];
  }
  if (!clusterIds.length) return clearFocus();
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
  setFocus({ kind: 'cluster', label, ids: Int32Array.from(order).sort(), order, clusterIds });
}

/** Focus the clips of one legend row when colouring by a column. */
export function focusCategory(item) {
  const codes = state.legend && state.legend.codes;
  if (!codes) return;
  const ids = [];
  for (let i = 0; i < codes.length; i++) if (codes[i] === item.code) ids.push(i);
  setFocus({ kind: 'category', label: `${state.colorBy}: ${item.label}`, ids: Int32Array.from(ids) });
}

export function focusClass(classId) {
  const k = state.classes.find((c) => c.id === classId);
  const ids = (state.members[classId] || state.members[String(classId)] || []).slice();
  if (!k) return;
  if (!ids.length) {
    set({ focus: { kind: 'class', classId, label: k.name, ids: new Int32Array(0) }, galleryOrder: new Int32Array(0) });
    state.runtime.map.select([]);
    return;
  }
  setFocus({ kind: 'class', classId, label: k.name, ids: Int32Array.from(ids) });
}
