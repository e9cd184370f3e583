// Boot: load the collection, draw the map, wire the views together. Behaviours live in actions.js and the
// modules it gathers; the test hook in hook.js.
import { api, getClips, getMap, urls } from './api.js';
import { state, set, subscribe } from './state.js';
import { listen, joinCollection } from './socket.js';
import { SpritePlayer } from './audio/player.js';
import { createMap, normalise } from './views/map.js';
import { actions } from './actions.js';
import { toast } from './toast.js';
import { installHook } from './hook.js';
import { initHelp } from './views/help.js';
import { initHoverCard } from './views/hovercard.js';
import { initLegend } from './views/legend.js';
import { initControls } from './views/controls.js';
import { initGallery } from './views/gallery.js';
import { initPooling } from './views/pooling.js';
import { initKeyboard } from './keyboard.js';
import { escapeHtml } from './util.js';
import { initUpload } from './views/upload.js';
import { initRecording } from './views/recording.js';
import { initCounts } from './views/counts.js';
import { initFilters } from './views/filters.js';
import { initClusterLabels } from './views/cluster_labels.js';
import { initLearnCard } from './views/similar.js';
import { initReview } from './views/review.js';
import { initConfidence } from './views/confidence.js';
import { initImport } from './views/import.js';
import { initRefine } from './views/refine.js';

const $ = (id) => document.getElementById(id);

const mark = (name) => performance.mark(`sonomap:${name}`);

async function boot() {
  const t0 = performance.now();
  mark('boot');
  installHook();
  const status = $('map-status');
  initHelp($('help'), $('help-toggle'), $('help-close'));
  initUpload(); // dropping recordings works even before any collection exists
  const params = new URLSearchParams(location.search);
  // Ask for the list and (when the URL names one) the collection at once, and create the WebGL map while they travel.
  const wanted = params.get('c');
  const listP = api.collections();
  const earlyInfoP = wanted ? api.collection(wanted).catch(() => null) : Promise.resolve(null);
  const map = createMap({
    canvas: $('map-canvas'),
    onHover: (i, t, th) => actions.hoverPoint(i, t, th),
    onOut: () => actions.leavePoint(),
    onClick: (i) => actions.pin(i),
    onLasso: (ids) => actions.lassoSelect(ids),
    onDeselect: () => actions.clearFocus(),
  });
  let list;
  try {
    list = (await listP).collections || [];
  } catch (e) {
    status.textContent = `Could not reach the server: ${e.message}`;
    return;
  }
  if (!list.length) {
    status.textContent = 'No collections yet. Drop recordings (files, a folder or a zip) on this page, or build one with: python -m preprocess build INPUT --out COLLECTION';
    return;
  }
  mark('collections');
  const names = list.map((c) => c.name);
  const name = names.includes(params.get('c')) ? params.get('c') : names[0];
  const sel = $('collection-select');
  sel.innerHTML = names.map((n) => `<option>${escapeHtml(n)}</option>`).join('');
  sel.value = name;
  sel.onchange = () => {
    location.search = `?c=${encodeURIComponent(sel.value)}`;
  };

  // The list already names each collection's reductions: start the map download now, not after the collection's
  // details (the server computes slider defaults for those; the map is what a person waits for).
  const guessKey = (() => {
    const summary = list.find((c) => c.name === name) || {};
    const keys = (summary.reductions || []).map((r) => (typeof r === 'string' ? r : r.key));
    if (params.get('r') && keys.includes(params.get('r'))) return params.get('r');
    return keys.includes('birdnet') ? 'birdnet' : keys[0];
  })();
  const guessedMapP = guessKey ? getMap(name, guessKey).catch(() => null) : null;

  const early = await earlyInfoP;
  const info = (early && name === wanted ? early : await api.collection(name)).collection;
  mark('info');
  const config = info.config || {};
  set({ collections: list, collection: name, info, config });
  initCounts($('collection-counts')); // kept current as uploads add clips

  const reductions = info.reductions || [];
  const key = params.get('r') && reductions.some((r) => r.key === params.get('r'))
    ? params.get('r')
    : info.default_reduction || (reductions[0] && reductions[0].key);

  const mapP = !key ? null : key === guessKey && guessedMapP ? guessedMapP.then((xy) => xy || getMap(name, key)) : getMap(name, key);
  const player = new SpritePlayer({
    urlFor: (s) => urls.audio(name, s),
    sampleRate: Number(config.audio_sample_rate || config.sample_rate || 22050),
  });
  actions.init({ map, player });
  let connectedBefore = false;
  listen({
    connect: async () => {
      await joinCollection(name);
      if (connectedBefore) {
        // after a reconnect: catch up on label changes, and re-ask for a result we never received
        actions.refreshClasses();
        if (state.clusterRequest && (!state.job || state.job.state === 'running')) actions.runClustering();
      }
      connectedBefore = true;
    },
    progress: (m) => actions.onJobProgress(m),
    result: (m) => actions.onJobResult(m),
    error: (m) => actions.onJobError(m),
    cancelled: (m) => actions.onJobCancelled(m),
    labelsChanged: (m) => actions.onLabelsChanged(m),
  });

  // The map first (8 bytes a point), then the clip table: the server builds both in one process, so asking for
  // the bigger one at the same time only delays the first points.
  let clipsP = null;
  if (!key) {
    status.textContent = 'This collection has no reduction yet: run python -m preprocess reduce';
  } else {
    set({ reduction: key });
    const xy = await mapP;
    mark('map-fetched');
    clipsP = getClips(name);
    const { nx, ny, box } = normalise(xy);
    set({ xy, nx, ny, n: nx.length });
    await map.setPoints(nx, ny, box);
    state.stats.firstPointsMs = performance.now();
    state.stats.pointsDrawn = nx.length;
    performance.mark('sonomap:first-points');
    status.hidden = true;
  }

  // Everything but the clip table is here: the page works (clustering, legend, classes) while it arrives.
  initHoverCard($('hovercard'));
  initLegend($('legend'), $('color-by'), $('hide-noise'));
  initControls($('controls-body'), $('job'), $('cluster-summary'));
  initGallery($('gallery'));
  initPooling($('pooling'));
  initImport($('pooling'));
  initConfidence($('birdnet-card'));
  initKeyboard();
  initTopbar(player, map);
  initRecording();
  initFilters($('map-wrap'));
  initClusterLabels($('map-wrap'));
  initLearnCard($('learn'));
  initReview($('review'), { train: actions.train });
  actions.initLearning();
  initRefine($('refine'));

  const clipsHint = $('clips-status');
  clipsHint.hidden = false;
  const clipsRes = await (clipsP || getClips(name));
  clipsHint.hidden = true;
  const clips = clipsRes.columns || {};
  set({ clips, n: state.n || clipsRes.n });
  state.stats.clipsLoadedMs = performance.now();
  actions.afterClipsLoaded();

  actions.refreshClasses();
  state.stats.ready = true;
  state.stats.bootMs = performance.now() - t0;
}

function initTopbar(player, map) {
  const vol = $('volume');
  const mute = $('mute-toggle');
  vol.value = String(state.volume);
  mute.innerHTML = speakerIcon(false);
  vol.oninput = () => set({ volume: Number(vol.value), muted: false });
  mute.onclick = () => set({ muted: !state.muted });
  subscribe(['volume', 'muted'], (s) => {
    player.setVolume(s.volume);
    player.setMuted(s.muted);
    mute.innerHTML = speakerIcon(s.muted || s.volume === 0);
    mute.classList.toggle('on', s.muted);
    vol.value = String(s.volume);
  });
  const lasso = $('lasso-toggle');
  lasso.onclick = () => set({ lassoMode: !state.lassoMode });
  subscribe('lassoMode', (s) => {
    map.setLasso(s.lassoMode);
    lasso.classList.toggle('on', s.lassoMode);
  });
  $('zoom-reset').onclick = () => map.fit();

  // Browsers start audio suspended until a click or key press; say so, and resume on the first one.
  const hint = $('sound-hint');
  const start = $('sound-start');
  const update = () => {
    hint.hidden = player.running;
    start.hidden = player.running || state.runtime.soundPromptDismissed;
  };
  start.onclick = () => {
    state.runtime.soundPromptDismissed = true;
    update();
  };
  player.onStateChange = update;
  update();
  const wake = () => player.resume().then(update);
  window.addEventListener('pointerdown', wake, { capture: true });
  window.addEventListener('keydown', wake, { capture: true });
}

function speakerIcon(off) {
  const waves = off
    ? '<path d="M16 9l5 6M21 9l-5 6" stroke="currentColor" stroke-width="2" fill="none" stroke-linecap="round"/>'
    : '<path d="M16 8.5a5 5 0 0 1 0 7M18.5 6a8.5 8.5 0 0 1 0 12" stroke="currentColor" stroke-width="2" fill="none" stroke-linecap="round"/>';
  return `<svg width="16" height="16" viewBox="0 0 24 24" aria-hidden="true"><path d="M4 9h4l5-4v14l-5-4H4z" fill="currentColor"/>${waves}</svg>`;
}

boot().catch((e) => {
  console.error(e);
  toast(`Could not load: ${e.message}`, 'error');
  const st = document.getElementById('map-status');
  st.hidden = false;
  st.textContent = `Could not load: ${e.message}`;
});
