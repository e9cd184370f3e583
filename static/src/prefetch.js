// Audio prefetch: a coarse grid of which sprites the points in each map cell need, so the sprites around the
// pointer are decoded before it gets there.
import { state } from './state.js';

const GRID = 32;

function cellOf(x, y) {
  const gx = Math.max(0, Math.min(GRID - 1, Math.floor(((x + 1) / 2) * GRID)));
  const gy = Math.max(0, Math.min(GRID - 1, Math.floor(((y + 1) / 2) * GRID)));
  return [gx, gy];
}

const bytesOf = (s) => state.prefetch.spriteBytes.get(s);

/** Index the clips' sprites by map cell, then decode sprites busiest first (all of them for small collections). */
export function buildPrefetchGrid() {
  const { nx, ny, clips } = state;
  const player = state.runtime.player;
  if (!nx || !clips || !clips.audio_sprite || !player) return;
  const cells = Array.from({ length: GRID * GRID }, () => new Map());
  const rate = Number(state.config.audio_sample_rate || 22050);
  const ctxRate = player.ctx.sampleRate;
  const spriteBytes = new Map();
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
  state.prefetch.grid = cells.map((m) => [...m.entries()].sort((a, b) => b[1] - a[1]));
  state.prefetch.spriteBytes = spriteBytes;
  const order = [...total.entries()].sort((a, b) => b[1] - a[1]).map(([s]) => s);
  player.prefetch(order, bytesOf);
}

/** Decode the sprites of the map cells around normalised position (x, y), the cell under it weighted most. */
export function prefetchAround(x, y) {
  const grid = state.prefetch.grid;
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
  state.runtime.player.prefetch(order.slice(0, 12), bytesOf);
}

/** Decode the sprites of these clips (the first members of a gallery: where people listen next). */
export function prefetchClips(ids) {
  if (!state.clips || !state.runtime.player) return;
  const sprites = [];
  for (const i of ids) {
    const s = state.clips.audio_sprite[i];
    if (!sprites.includes(s)) sprites.push(s);
  }
  state.runtime.player.prefetch(sprites, bytesOf);
}
