// The header's counts (clips · recordings · hours), kept current as uploads add clips.
import { state, subscribe } from '../state.js';
import { fmtInt } from '../util.js';

export function initCounts(root) {
  const render = () => {
    const counts = (state.info && state.info.counts) || {};
    const c = state.clips;
    let clips = counts.clips ?? 0;
    let recordings = counts.recordings ?? 0;
    let audioS = counts.audio_s || 0;
    if (c && c.recording_id && state.n > clips) {
      // clips added since the page loaded: count their recordings and the audio they span
      const known = new Set();
      for (let i = 0; i < clips; i++) known.add(c.recording_id[i]);
      const added = new Map();
      for (let i = clips; i < state.n; i++) {
        const r = c.recording_id[i];
        if (!known.has(r)) added.set(r, Math.max(added.get(r) || 0, Number(c.end_s[i]) || 0));
      }
      recordings += added.size;
      for (const s of added.values()) audioS += s;
      clips = state.n;
    }
    root.textContent = `${fmtInt(clips)} clips · ${fmtInt(recordings)} recordings` + (audioS ? ` · ${(audioS / 3600).toFixed(1)} h` : '');
    root.dataset.clips = String(clips);
    root.dataset.recordings = String(recordings);
  };
  subscribe(['info', 'n', 'clips'], render);
  render();
}
