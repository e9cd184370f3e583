// Gallery geometry: which clips a cluster holds and in what order the gallery shows them (typical first).
import { state } from './state.js';

/**
 * Order `ids` by distance on the map from the medoid (clip index; else the member nearest the members' mean):
 * typical members first, outliers last. Returns an Int32Array of clip ids.
 */
export function typicalOrder(ids, medoid = null) {
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

/** Clip ids of cluster k (-1: noise) in the current clustering, ascending. */
export function membersOfCluster(k) {
  const labels = state.cluster.labels;
  const out = [];
  for (let i = 0; i < labels.length; i++) if (labels[i] === k) out.push(i);
  return out;
}

/** The server's summary of cluster k ({id, size, medoid, top_labels, top_species}), or null. */
export function clusterInfo(k) {
  return (state.cluster && (state.cluster.result.clusters || []).find((c) => c.id === k)) || null;
}
