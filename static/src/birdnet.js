// BirdNET as BirdNET-Analyzer shows it: each guess with its confidence, and below the minimum confidence
// "uncertain", never a wrong name. The clip table has top_species (scientific name, the location/season list
// applied) and top_score (0..1, NaN = none); cluster summaries' top_species are [species, count, mean score].
// Owns state.minConfidence and state.disagree.
import { state, set } from './state.js';
import { api } from './api.js';
import { latestOnly } from './latest.js';
import { setFocus, clearFocus } from './focus.js';
import { toast } from './toast.js';
import { clusterInfo } from './geometry.js';

export const MIN_CONFIDENCE = 0.1; // BirdNET-Analyzer's --min_conf default
export const UNCERTAIN = 'uncertain';
export const UNCERTAIN_COLOR = '#6f7480'; // a neutral grey: no species colour for a guess below the minimum

export const fmtScore = (s) => (Number.isFinite(s) ? Number(s).toFixed(2) : '');

/** Clip i's BirdNET score, NaN where none (clips.bin has NaN; the JSON form null). */
export function scoreOf(i) {
  const s = state.clips && state.clips.top_score;
  const v = s ? s[i] : null;
  return v === null || v === undefined ? NaN : Number(v);
}

/** Whether the clip table carries BirdNET scores at all. */
export function hasScores() {
  const s = state.clips && state.clips.top_score;
  if (!s) return false;
  for (let i = 0; i < s.length; i++) if (Number.isFinite(s[i])) return true;
  return false;
}

/** BirdNET's guess for clip i: {name (scientific, or null), score (NaN = none), uncertain (below the minimum)}. */
export function guessOf(i) {
  const c = state.clips;
  const name = c && c.top_species ? c.top_species[i] || null : null;
  const score = scoreOf(i);
  // a clip table without scores (an older server) names every guess as it is
  return { name, score, uncertain: !!name && !!c.top_score && !(score >= state.minConfidence) };
}

/** One guess in words: "Parus major 0.87", or "uncertain (0.05)" below the minimum confidence. */
export function guessText({ name, score, uncertain }) {
  if (!name) return null;
  if (uncertain) return `${UNCERTAIN}${Number.isFinite(score) ? ` (${fmtScore(score)})` : ''}`;
  return Number.isFinite(score) ? `${name} ${fmtScore(score)}` : name;
}

/** Whether BirdNET disagrees with clip i's label at the current minimum confidence (once the server said so). */
export function disagrees(i) {
  const d = state.disagree;
  return !!d && d.minConfidence === state.minConfidence && d.ids.includes(i);
}

/** The top_species column with the minimum confidence applied (a colour-by column: "uncertain" below it). */
export function confidentSpecies() {
  const c = state.clips;
  const names = (c && c.top_species) || [];
  if (!c || !c.top_score) return names;
  const out = new Array(names.length);
  for (let i = 0; i < names.length; i++) {
    const v = names[i];
    out[i] = v && !(scoreOf(i) >= state.minConfidence) ? UNCERTAIN : v;
  }
  return out;
}

/** A cluster summary's best BirdNET species in words ("Parus major 0.82 · 12"), minimum confidence applied. */
export function clusterSpeciesText(info) {
  const top = info && info.top_species && info.top_species[0];
  if (!top) return '';
  const [name, count, mean] = top;
  if (mean === undefined || mean === null) return `${name} · ${count}`;
  if (!(mean >= state.minConfidence)) return `${UNCERTAIN} (${fmtScore(mean)}) · ${count}`;
  return `${name} ${fmtScore(mean)} · ${count}`;
}

/** A top_species colouring (encodeColumn of confidentSpecies()) with "uncertain" in its own grey, listed last. */
export function markUncertain(enc) {
  const it = enc.items.find((x) => x.kind === 'category' && x.key === UNCERTAIN);
  if (!it) return enc;
  enc.colors[it.code] = UNCERTAIN_COLOR;
  it.color = UNCERTAIN_COLOR;
  it.kind = 'uncertain';
  it.label = `uncertain (score < ${fmtScore(state.minConfidence)})`;
  enc.items = enc.items.filter((x) => x !== it).concat(it);
  return enc;
}

/**
 * BirdNET's best species among the focused clips in words: a single cluster's from its summary, else counted from
 * the clip table (the most frequent top species, its mean score); the minimum confidence applies to that mean.
 */
export function focusSpeciesText(f) {
  if (!f || !f.ids || !f.ids.length || !state.clips || !state.clips.top_species) return '';
  if (f.kind === 'cluster' && f.clusterIds && f.clusterIds.length === 1) {
    const info = clusterInfo(f.clusterIds[0]);
    if (info && info.top_species) return clusterSpeciesText(info);
  }
  const names = state.clips.top_species;
  const acc = new Map();
  for (const i of f.ids) {
    const v = names[i];
    if (!v) continue;
    const a = acc.get(v) || [0, 0, 0];
    a[0]++;
    const s = scoreOf(i);
    if (Number.isFinite(s)) {
      a[1] += s;
      a[2]++;
    }
    acc.set(v, a);
  }
  let best = null;
  for (const [name, a] of acc) if (!best || a[0] > best[1]) best = [name, a[0], a[2] ? a[1] / a[2] : null];
  return best ? clusterSpeciesText({ top_species: [best] }) : '';
}

const fetchDisagree = latestOnly((c, minConf) => api.disagree(c, minConf));

/** Returned by refreshDisagree when a newer request superseded it (its answer sets state.disagree instead). */
const STALE = Symbol('stale');

/**
 * Fetch the clips where BirdNET confidently names another species than the label; state.disagree = {ids, …}.
 * Resolves to that object, null on an error (toasted), or STALE when a newer request superseded this one.
 */
export async function refreshDisagree() {
  const minConfidence = state.minConfidence;
  try {
    const res = await fetchDisagree(state.collection, minConfidence);
    if (res.stale) return STALE; // a newer request was made meanwhile (another minimum, or the same one again)
    const r = res.value;
    const d = { minConfidence, ids: Int32Array.from(r.clip_ids || []), nLabelled: r.n_labelled ?? 0, birdnet: !!r.birdnet };
    set({ disagree: d });
    return d;
  } catch (e) {
    toast(`BirdNET: ${e.message}`, 'error');
    return null;
  }
}

const focusLabel = (d) => `BirdNET disagrees with the label (≥ ${fmtScore(d.minConfidence)})`;

/** Show the disagreeing clips in the gallery and on the map (or clear that focus when `on` is false). */
export async function focusDisagree(on = true) {
  if (!on) {
    if (state.focus && state.focus.kind === 'disagree') clearFocus();
    return;
  }
  // A refresh started meanwhile (the minimum confidence's debounced refresh, the card's first load) supersedes
  // this request; the user's click still means "show them", so ask again behind it rather than dropping it.
  let d = STALE;
  for (let tries = 0; d === STALE && tries < 5; tries++) d = await refreshDisagree();
  if (!d || d === STALE) return;
  if (!d.ids.length) {
    if (state.focus && state.focus.kind === 'disagree') clearFocus();
    set({ focus: { kind: 'disagree', label: focusLabel(d), ids: new Int32Array(0) }, galleryOrder: new Int32Array(0) });
    state.runtime.map.select([]);
    return;
  }
  setFocus({ kind: 'disagree', label: focusLabel(d), ids: d.ids });
}

/** Change the minimum confidence (0..1): the colouring, the hover card and an open disagreement focus follow. */
export function setMinConfidence(v) {
  const x = Math.max(0, Math.min(1, Number(v)));
  if (!Number.isFinite(x)) return;
  set({ minConfidence: Math.round(x * 100) / 100 });
}
