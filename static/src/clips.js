// Reading one clip out of the columnar clip table: playback geometry, tile geometry, metadata.
import { state } from './state.js';
import { urls } from './api.js';

/** {clip_id, sprite, offset_s, duration_s} for the player (offsets are samples at audio_sample_rate). */
export function playbackOf(i) {
  const c = state.clips;
  const rate = Number(state.config.audio_sample_rate || state.config.sample_rate || 22050);
  return {
    clip_id: i,
    sprite: Number(c.audio_sprite[i]),
    offset_s: Number(c.audio_offset[i]) / rate,
    duration_s: Number(c.audio_length[i]) / rate,
  };
}

/** CSS for a spectrogram tile of clip i drawn `width` px wide (height keeps the tile's aspect). */
export function tileCss(i, width) {
  const cfg = state.config;
  const tw = Number(cfg.tile_w || 64);
  const th = Number(cfg.tile_h || 64);
  const cols = Number(cfg.sheet_cols || 32);
  const k = width / tw;
  const sheet = state.clips.sheet[i];
  const cell = state.clips.cell[i];
  const x = (cell % cols) * tw * k;
  const y = Math.floor(cell / cols) * th * k;
  return {
    backgroundImage: `url("${urls.sheet(state.collection, sheet, cfg.tile_format || 'jpg')}")`,
    backgroundPosition: `-${x}px -${y}px`,
    // Sheets are always sheet_cols cells wide but only as tall as the rows they use: keep the aspect.
    backgroundSize: `${cols * tw * k}px auto`,
    width: `${width}px`,
    height: `${Math.round(th * k)}px`,
  };
}

export function applyTile(el, i, width) {
  Object.assign(el.style, tileCss(i, width));
}

export function value(col, i) {
  const c = state.clips && state.clips[col];
  if (!c) return null;
  const v = c[i];
  return v === undefined || v === '' || (typeof v === 'number' && Number.isNaN(v)) ? null : v;
}

export function fmtTime(s) {
  if (s === null || s === undefined || Number.isNaN(Number(s))) return '';
  s = Number(s);
  const m = Math.floor(s / 60);
  const r = s - m * 60;
  return `${m}:${r < 10 ? '0' : ''}${r.toFixed(1)}`;
}

/** The xeno-canto page of a clip's recording, if known. */
export function xenoCantoUrl(i) {
  const url = value('url', i);
  if (url && /^https?:\/\//.test(String(url))) return String(url);
  const xc = value('xc_id', i);
  if (xc !== null) return `https://xeno-canto.org/${String(xc).replace(/^XC/i, '')}`;
  return null;
}

/** The classes clip i belongs to. */
export function classesOf(i) {
  const ids = state.membership && state.membership.get(i);
  if (!ids) return [];
  return state.classes.filter((k) => ids.includes(k.id));
}
