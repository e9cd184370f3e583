// The whole-recording view: open a clip's recording (R, or the hover card's "recording" button) and follow it while
// it plays. A scrolling spectrogram made of server-rendered tiles (fetched only around what is visible), the
// recording's clips as boxes coloured like the map, a playhead driven by an <audio> element that streams the original
// with HTTP Range (an hour is never downloaded whole). Clicking a box seeks there and plays; the clip under the
// playhead is highlighted on the map and shown in the hover card.
//
// Sound: the <audio> element plays through the player's master gain (volume and mute act on it); hovering a point
// pauses it (the player plays one sound at a time), and starting it stops the clip being heard. Space and P toggle
// it while the view is open (keyboard.js). Its state is state.recording (+ recordingOpen / recordingPlaying).
import { state, set, subscribe } from '../state.js';
import { api, urls } from '../api.js';
import { toast } from '../toast.js';
import { stopAudio } from '../listening.js';
import { escapeHtml, el } from '../util.js';

const view = state.recording;

export function initRecording() {
  document.addEventListener('click', (e) => {
    const b = e.target.closest && e.target.closest('[data-open-recording]');
    if (b) openForClip(Number(b.dataset.openRecording));
  });
  subscribe(['legend', 'classes', 'cluster'], () => state.recordingOpen && colourBoxes());
}

export async function openForClip(clipId) {
  if (!state.clips || clipId < 0 || clipId >= state.n) return;
  const rid = Number(state.clips.recording_id[clipId]);
  try {
    await openRecording(rid);
  } catch (e) {
    toast(`Could not open the recording: ${e.message}`, 'error');
    return;
  }
  const start = Number(state.clips.start_s[clipId]);
  seek(start, { play: false });
  scrollTo(start - 1);
}

async function openRecording(rid) {
  if (state.recordingOpen && view.recordingId === rid) return;
  const info = await api.recording(state.collection, rid);
  close();
  Object.assign(view, { recordingId: rid, info, clips: info.clips, currentClip: -1, follow: true });
  view.tileS = info.tile.tile_s_choices.includes(view.tileS) ? view.tileS : info.tile.tile_s_choices[1] || 10;
  build();
  set({ recordingOpen: true, recordingPlaying: false });
}

function build() {
  const info = view.info;
  const rec = info.recording;
  const title = rec.common_name || rec.species || rec.label || '';
  const root = el('section', { id: 'recording-view', class: 'recording-view' });
  root.innerHTML = `
    <div class="rv-head">
      <button class="tool" data-play title="Play / pause (Space or P)">▶</button>
      <div class="rv-title"><b>${escapeHtml(rec.file_name || rec.path)}</b>
        <span class="muted">${title ? `${escapeHtml(title)} · ` : ''}${fmt(info.duration_s)} · ${info.clips.clip_id.length} clips</span></div>
      <span class="rv-time muted">0:00.0</span>
      <div class="spacer"></div>
      <label class="muted">zoom <select data-zoom>${info.tile.tile_s_choices.map((s) => `<option value="${s}" ${s === view.tileS ? 'selected' : ''}>${s} s per tile</option>`).join('')}</select></label>
      <label class="check muted"><input type="checkbox" data-follow checked> follow</label>
      <button class="tool icon" data-close title="Close (Esc)">✕</button>
    </div>
    <div class="rv-body">
      <div class="rv-axis"></div>
      <div class="rv-scroll"><div class="rv-track"><div class="rv-playhead"></div></div></div>
    </div>`;
  document.body.append(root);
  const scroller = root.querySelector('.rv-scroll');
  const track = root.querySelector('.rv-track');
  const playhead = root.querySelector('.rv-playhead');
  root.querySelector('.rv-axis').innerHTML = info.axis.ticks
    .map((t) => `<span style="top:${(t.y * 100).toFixed(2)}%">${t.hz >= 1000 ? `${t.hz / 1000}k` : t.hz}</span>`)
    .join('');
  const audio = new Audio();
  audio.preload = 'metadata';
  audio.src = info.audio_url || urls.recordingAudio(state.collection, view.recordingId);
  view.el = { root, audio, scroller, track, playhead };
  const player = state.runtime.player;
  if (player) view.source = player.attachMedia(audio); // same output as hover playback: volume and mute act on it
  audio.addEventListener('play', () => {
    stopAudio(); // never on top of a clip or the gallery's sequence
    if (player) player.resume();
    root.querySelector('[data-play]').textContent = '❚❚';
    set({ recordingPlaying: true });
    loop();
  });
  audio.addEventListener('pause', () => {
    root.querySelector('[data-play]').textContent = '▶';
    set({ recordingPlaying: false });
  });
  audio.addEventListener('seeked', () => tick());
  audio.addEventListener('error', () => toast('The recording\'s audio could not be played', 'error'));
  root.querySelector('[data-play]').onclick = (e) => {
    e.currentTarget.blur(); // Space must reach the page's keys, not press this button again
    togglePlay();
  };
  root.querySelector('[data-close]').onclick = close;
  root.querySelector('[data-follow]').onchange = (e) => (view.follow = e.target.checked);
  root.querySelector('[data-zoom]').onchange = (e) => setZoom(Number(e.target.value));
  scroller.addEventListener('scroll', () => loadVisibleTiles(), { passive: true });
  // click on the spectrogram (not a box): seek there
  track.addEventListener('click', (e) => {
    if (e.target.closest('.rv-box')) return;
    const r = track.getBoundingClientRect();
    seek((e.clientX - r.left) / view.pxPerS, { play: true });
  });
  // a manual scroll stops following until play resumes
  scroller.addEventListener('wheel', () => (view.follow = false), { passive: true });
  layout();
}

function layout() {
  const { track } = view.el;
  view.pxPerS = view.info.tile.width_px / view.tileS;
  const width = Math.max(1, Math.ceil(view.info.duration_s * view.pxPerS));
  track.style.width = `${width}px`;
  // zoomed far out, outlines would hide the spectrogram: clips become a coloured strip along the bottom
  const c0 = view.clips;
  const typical = c0.clip_id.length ? (c0.end_s[0] - c0.start_s[0]) * view.pxPerS : 100;
  track.classList.toggle('dense', typical < 14);
  for (const img of view.tiles.values()) img.remove();
  view.tiles.clear();
  track.querySelectorAll('.rv-box').forEach((b) => b.remove());
  const c = view.clips;
  for (let k = 0; k < c.clip_id.length; k++) {
    const box = el('div', {
      class: 'rv-box',
      'data-clip': c.clip_id[k],
      title: `clip ${c.clip_id[k]} · ${fmt(c.start_s[k])}–${fmt(c.end_s[k])}`,
      style: {
        left: `${c.start_s[k] * view.pxPerS}px`,
        width: `${Math.max(2, (Math.min(c.end_s[k], view.info.duration_s) - c.start_s[k]) * view.pxPerS)}px`,
        top: `${c.y_top[k] * 100}%`,
        height: `${Math.max(2, (c.y_bottom[k] - c.y_top[k]) * 100)}%`,
      },
    });
    box.addEventListener('click', (e) => {
      e.stopPropagation();
      seek(c.start_s[k], { play: true });
    });
    track.append(box);
  }
  colourBoxes();
  tick();
  loadVisibleTiles();
}

function setZoom(tileS) {
  const { audio, scroller } = view.el;
  const t = audio ? audio.currentTime : 0;
  view.tileS = tileS;
  layout();
  scrollTo(t - scroller.clientWidth / view.pxPerS / 2);
}

function loadVisibleTiles() {
  if (!view.el) return;
  const { scroller, track } = view.el;
  const tiles = view.tiles;
  const w = view.info.tile.width_px;
  const n = view.info.tile.n_tiles[String(view.tileS)];
  const first = Math.max(0, Math.floor(scroller.scrollLeft / w) - 1);
  const last = Math.min(n - 1, Math.floor((scroller.scrollLeft + scroller.clientWidth) / w) + 1);
  for (let i = first; i <= last; i++) {
    if (tiles.has(i)) continue;
    const img = el('img', {
      class: 'rv-tile',
      alt: '',
      draggable: 'false',
      src: urls.recordingTile(state.collection, view.recordingId, view.tileS, i),
      style: { left: `${i * w}px`, width: `${Math.max(1, Math.min(w, view.info.duration_s * view.pxPerS - i * w))}px` },
    });
    img.dataset.index = i;
    tiles.set(i, img);
    track.prepend(img);
  }
  // drop tiles far from view so an hour-long recording keeps a bounded DOM
  for (const [i, img] of tiles) {
    if (i < first - 6 || i > last + 6) {
      img.remove();
      tiles.delete(i);
    }
  }
}

function colourBoxes() {
  if (!view.el) return;
  const { track } = view.el;
  const legend = state.legend;
  for (const box of track.querySelectorAll('.rv-box')) {
    const id = Number(box.dataset.clip);
    let color = '#8fa3c7';
    if (legend && legend.codes && id < legend.codes.length) color = legend.colors[legend.codes[id]] || color;
    box.style.setProperty('--c', color);
  }
}

function seek(t, { play = false } = {}) {
  if (!view.el) return;
  const { audio, root } = view.el;
  const go = () => {
    audio.currentTime = Math.max(0, Math.min(t, view.info.duration_s - 0.01));
    tick();
    if (play) {
      view.follow = true;
      const cb = root.querySelector('[data-follow]');
      if (cb) cb.checked = true;
      audio.play().catch((e) => toast(`Playback blocked: ${e.message}`, 'error'));
    }
  };
  if (audio.readyState >= 1) go();
  else audio.addEventListener('loadedmetadata', go, { once: true });
}

/** Play / pause the open recording (Space, P, the ▶ button). */
export function togglePlay() {
  if (!view.el) return;
  const { audio } = view.el;
  if (audio.paused) audio.play().catch((e) => toast(`Playback blocked: ${e.message}`, 'error'));
  else audio.pause();
}

function scrollTo(t) {
  if (view.el) view.el.scroller.scrollLeft = Math.max(0, t * view.pxPerS);
  loadVisibleTiles();
}

function loop() {
  cancelAnimationFrame(view.raf);
  const step = () => {
    tick();
    if (view.el && !view.el.audio.paused) view.raf = requestAnimationFrame(step);
  };
  view.raf = requestAnimationFrame(step);
}

/** Move the playhead to the audio's time, keep it in view, and track the clip under it. */
function tick() {
  if (!view.el) return;
  const { audio, playhead, root, scroller, track } = view.el;
  const t = audio.currentTime;
  const x = t * view.pxPerS;
  playhead.style.left = `${x}px`;
  root.querySelector('.rv-time').textContent = `${fmt(t)} / ${fmt(view.info.duration_s)}`;
  if (view.follow && !audio.paused) {
    const left = scroller.scrollLeft;
    const w = scroller.clientWidth;
    if (x < left || x > left + w * 0.85) scrollTo(t - (w * 0.1) / view.pxPerS);
  }
  // the clip under the playhead: the latest one that started at or before t and has not ended
  const c = view.clips;
  let cur = -1;
  for (let k = 0; k < c.clip_id.length; k++) {
    if (c.start_s[k] <= t && t < c.end_s[k]) cur = c.clip_id[k];
    if (c.start_s[k] > t) break;
  }
  if (cur !== view.currentClip) {
    view.currentClip = cur;
    for (const b of track.querySelectorAll('.rv-box.current')) b.classList.remove('current');
    if (cur >= 0) {
      const b = track.querySelector(`.rv-box[data-clip="${cur}"]`);
      if (b) b.classList.add('current');
      if (state.runtime.map && cur < state.n) state.runtime.map.hover(cur); // highlight it on the map
      set({ current: cur });
    }
  }
}

export function close() {
  cancelAnimationFrame(view.raf);
  if (view.el) {
    const { audio, root } = view.el;
    if (state.runtime.player && view.source) state.runtime.player.detachMedia();
    audio.pause();
    audio.removeAttribute('src');
    audio.load();
    root.remove();
  }
  view.tiles.clear();
  view.el = null;
  view.source = null;
  view.recordingId = null;
  set({ recordingOpen: false, recordingPlaying: false });
}

function fmt(s) {
  s = Math.max(0, Number(s) || 0);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = (s % 60).toFixed(1).padStart(4, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}
