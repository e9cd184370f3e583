// Colouring the map: by cluster, by one of the clip table's columns, or by the user's classes.
import { state, set } from './state.js';
import { encodeClusters, encodeColumn, encodeClasses } from './colors.js';
import { encodeScores } from './score_colors.js';
import { confidentSpecies, clusterSpeciesText, markUncertain } from './birdnet.js';

/** Recompute the legend from the current colouring and redraw the map's colours (and the noise filter). */
export function recolor() {
  const map = state.runtime.map;
  if (!state.nx || !map) return;
  if (!state.clips && state.colorBy !== 'cluster') return; // the clip table is still on its way
  let enc;
  const by = state.colorBy;
  if (by === 'cluster') {
    if (!state.cluster) {
      enc = { codes: new Float32Array(state.n), colors: ['#8fa3c7'], items: [], noiseCode: -1, pending: true };
    } else {
      enc = encodeClusters(state.cluster.labels, state.cluster.result.clusters);
      const byId = new Map((state.cluster.result.clusters || []).map((c) => [c.id, c]));
      for (const it of enc.items) {
        if (it.kind !== 'cluster') continue;
        const info = byId.get(it.key);
        it.birdnet = clusterSpeciesText(info);
        if (it.birdnet && info.top_species[0][0] === it.hint) it.hint = ''; // said once, with its score
      }
    }
  } else if (by === 'class') {
    enc = encodeClasses(state.n, state.classes, state.membership);
  } else if (by.startsWith('score:')) {
    // one class's classifier score (learning.js fetches them into state.learning.scores, then recolours)
    const sc = state.learning.scores;
    const cid = Number(by.slice(6));
    if (!sc || sc.classId !== cid || sc.values.length !== state.n) return;
    const m = state.learnModel && state.learnModel.classes.find((k) => k.class_id === cid);
    enc = encodeScores(sc.values, m ? m.threshold : null, m ? m.name : 'score');
  } else if (by === 'top_species') {
    enc = markUncertain(encodeColumn(confidentSpecies())); // below the minimum confidence: "uncertain", one colour
  } else {
    enc = encodeColumn(state.clips[by] || []);
  }
  set({ legend: { ...enc, by } });
  const hide = state.hideNoise && (by === 'cluster' || by === 'class') && enc.items.some((it) => it.code === 0);
  const mask = state.filterMask && state.filterMask.length === enc.codes.length ? state.filterMask : null;
  map.setColors(enc.codes, enc.colors).then(() => {
    if (hide || mask) {
      const keep = []; // the linked filters (filtering.js) hide the clips that fail them
      for (let i = 0; i < enc.codes.length; i++) if ((!hide || enc.codes[i] !== 0) && (!mask || mask[i])) keep.push(i);
      map.setFilter(keep);
    } else {
      map.setFilter(null);
    }
    if (state.focus) map.select(state.focus.ids);
    state.stats.colorVersion++;
  });
}

export function setColorBy(by) {
  set({ colorBy: by });
  recolor();
}

export function setHideNoise(on) {
  set({ hideNoise: on });
  recolor();
}
