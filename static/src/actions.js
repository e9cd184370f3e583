// What the page does, gathered in one object the views call: listening, focus, colour, clustering, pooling.
// Each concern lives in its own module; they write the state (state.js), the views draw it.
import { state, subscribe } from './state.js';
import { buildPrefetchGrid, prefetchAround } from './prefetch.js';
import * as listening from './listening.js';
import * as focus from './focus.js';
import * as coloring from './coloring.js';
import * as clustering from './clustering.js';
import * as classes from './classes.js';
import * as learning from './learning.js';
import * as review from './views/review.js';
import * as birdnet from './birdnet.js';
import * as labelsImport from './labels_import.js';

/** Wire the map and the player in (boot calls this once both exist). */
function init({ map, player }) {
  state.runtime.map = map;
  state.runtime.player = player;
  subscribe(['current', 'pinned'], (st) => map.setMarkers(st.current, st.pinned));
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
}

function afterClipsLoaded() {
  buildPrefetchGrid();
  coloring.recolor();
}

export const actions = {
  init,
  afterClipsLoaded,
  zoomTo: (ids) => state.runtime.map.zoomTo(ids),
  fit: () => state.runtime.map.fit(),
  ...listening,
  ...focus,
  ...coloring,
  ...clustering,
  ...classes,
  ...learning, // train, findSimilar, similarToFile, colorByScore, notInClass, …
  review: { start: review.start, accept: review.accept, reject: review.reject, skip: review.skip, back: review.back, acceptAll: review.acceptAll, close: review.close },
  ...birdnet,
  ...labelsImport,
};
