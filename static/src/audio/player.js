// Web Audio sprite player: decoded FLAC sprites in an LRU (bounded by decoded bytes), one voice at a time
// with short gain ramps so moving across points never clicks and never piles sounds up. It is the page's one
// output: a whole recording (an <audio> element, attachMedia) plays through the same master gain, so volume and
// mute act on everything, and a clip that starts pauses the recording (never two sounds at once).

const RAMP_IN_S = 0.004;
const RAMP_OUT_S = 0.012;

export class SpritePlayer {
  /**
   * @param {object} o
   * @param {(sprite:number) => string} o.urlFor  URL of an audio sprite
   * @param {number} o.sampleRate  audio_sample_rate of the collection (offsets are in these samples)
   * @param {number} [o.budgetBytes]  decoded-audio budget of the LRU
   */
  constructor({ urlFor, sampleRate, budgetBytes = 384 * 1024 * 1024 }) {
    this.urlFor = urlFor;
    this.sampleRate = sampleRate;
    this.budgetBytes = budgetBytes;
    this.cache = new Map(); // sprite -> {buffer, promise, bytes, used}
    this.bytes = 0;
    this.queue = [];
    this.inflight = 0;
    this.maxInflight = 2;
    this.voice = null;
    this.token = 0;
    this.volume = 0.8;
    this.muted = false;
    this.onStateChange = null;
    this.media = null; // {el, node}: the attached <audio> element
    try {
      // Decoding at the sprite's own rate keeps offsets exact and halves memory for 22.05 kHz collections.
      this.ctx = new AudioContext({ sampleRate, latencyHint: 'interactive' });
    } catch {
      this.ctx = new AudioContext({ latencyHint: 'interactive' });
    }
    this.master = this.ctx.createGain();
    this.master.gain.value = this.volume;
    // master -> meter -> speakers: the meter measures what a person hears (after volume and mute)
    this.meter = this.ctx.createAnalyser();
    this.meter.fftSize = 512;
    this.master.connect(this.meter);
    this.meter.connect(this.ctx.destination);
    this.ctx.onstatechange = () => this.onStateChange && this.onStateChange(this.ctx.state);
  }

  get running() {
    return this.ctx.state === 'running';
  }

  resume() {
    if (this.ctx.state !== 'running') return this.ctx.resume().catch(() => {});
    return Promise.resolve();
  }

  setVolume(v) {
    this.volume = v;
    this._applyGain();
  }

  setMuted(m) {
    this.muted = m;
    this._applyGain();
  }

  _applyGain() {
    const g = this.master.gain;
    const now = this.ctx.currentTime;
    g.cancelScheduledValues(now);
    g.setValueAtTime(g.value, now);
    g.linearRampToValueAtTime(this.muted ? 0 : this.volume, now + 0.02);
  }

  /** RMS of the output over the meter's window (~10-20 ms), 0..1. */
  outputLevel() {
    const buf = new Float32Array(this.meter.fftSize);
    this.meter.getFloatTimeDomainData(buf);
    let sum = 0;
    for (let i = 0; i < buf.length; i++) sum += buf[i] * buf[i];
    return Math.sqrt(sum / buf.length);
  }

  /**
   * Route an <audio> element through the master gain (volume, mute) and make it part of "one sound at a time":
   * play() pauses it. Returns its MediaElementAudioSourceNode. One element at a time; detachMedia() undoes it.
   */
  attachMedia(el) {
    this.detachMedia();
    el.volume = 1; // the master gain sets the level
    const node = this.ctx.createMediaElementSource(el);
    node.connect(this.master);
    this.media = { el, node };
    return node;
  }

  detachMedia() {
    if (!this.media) return;
    try {
      this.media.node.disconnect();
    } catch {}
    this.media = null;
  }

  /** Pause the attached recording if it is playing (a clip is about to play). */
  _pauseMedia() {
    const m = this.media;
    if (m && !m.el.paused) m.el.pause();
  }

  isReady(sprite) {
    const e = this.cache.get(sprite);
    return !!(e && e.buffer);
  }

  /** Decoded AudioBuffer of a sprite (fetching and decoding it if needed). */
  load(sprite, { priority = true } = {}) {
    let e = this.cache.get(sprite);
    if (e) {
      e.used = performance.now();
      if (e.buffer) return Promise.resolve(e.buffer);
      if (priority && e.queued) this._promote(sprite);
      return e.promise;
    }
    e = { buffer: null, bytes: 0, used: performance.now(), queued: true };
    e.promise = new Promise((resolve, reject) => {
      e.resolve = resolve;
      e.reject = reject;
    });
    e.promise.catch(() => {});
    this.cache.set(sprite, e);
    if (priority) this.queue.unshift(sprite);
    else this.queue.push(sprite);
    this._pump();
    return e.promise;
  }

  /** Fetch + decode these sprites in the background, in order, while they fit in half the budget. */
  prefetch(sprites, sizeOf = null) {
    let room = this.budgetBytes / 2;
    for (const s of sprites) {
      const e = this.cache.get(s);
      if (e) {
        e.used = performance.now();
        room -= e.bytes;
        continue;
      }
      if (room <= 0) break;
      this.load(s, { priority: false });
      room -= (sizeOf && sizeOf(s)) || 8 * 1024 * 1024; // estimated until decoded
    }
  }

  _promote(sprite) {
    const i = this.queue.indexOf(sprite);
    if (i > 0) {
      this.queue.splice(i, 1);
      this.queue.unshift(sprite);
    }
  }

  _pump() {
    while (this.inflight < this.maxInflight && this.queue.length) {
      const sprite = this.queue.shift();
      const e = this.cache.get(sprite);
      if (!e || !e.queued) continue;
      e.queued = false;
      this.inflight++;
      this._fetchDecode(sprite, e).finally(() => {
        this.inflight--;
        this._pump();
      });
    }
  }

  async _fetchDecode(sprite, e) {
    try {
      const res = await fetch(this.urlFor(sprite));
      if (!res.ok) throw new Error(`audio sprite ${sprite}: HTTP ${res.status}`);
      const data = await res.arrayBuffer();
      const buffer = await this.ctx.decodeAudioData(data);
      e.buffer = buffer;
      e.bytes = buffer.length * buffer.numberOfChannels * 4;
      this.bytes += e.bytes;
      e.resolve(buffer);
      this._evict(sprite);
    } catch (err) {
      this.cache.delete(sprite);
      e.reject(err);
    }
  }

  _evict(keep) {
    if (this.bytes <= this.budgetBytes) return;
    const entries = [...this.cache.entries()].filter(([s, e]) => e.buffer && s !== keep);
    entries.sort((a, b) => a[1].used - b[1].used);
    for (const [s, e] of entries) {
      if (this.bytes <= this.budgetBytes) break;
      if (this.voice && this.voice.sprite === s) continue;
      this.cache.delete(s);
      this.bytes -= e.bytes;
    }
  }

  /**
   * Play one clip now, stopping the previous one with a short fade.
   * @param {object} clip {clip_id, sprite, offset_s, duration_s}
   * @param {number} tEvent  performance.now()-based time of the pointer/keyboard event that asked for it
   * @param {number} tHandler  when the page started handling that event (t_handler - t_event = input queueing)
   * @returns {Promise<object|null>} the playback record, or null if superseded before its sprite was ready
   */
  async play(clip, tEvent = performance.now(), tHandler = performance.now()) {
    const token = ++this.token;
    this._pauseMedia();
    const e = this.cache.get(clip.sprite);
    let buffer = e && e.buffer;
    if (!buffer) {
      this._fadeOut();
      try {
        buffer = await this.load(clip.sprite);
      } catch (err) {
        console.warn(err);
        return null;
      }
      if (token !== this.token) return null; // the pointer moved on meanwhile
    } else {
      e.used = performance.now();
    }
    return this._start(clip, buffer, tEvent, tHandler);
  }

  _start(clip, buffer, tEvent, tHandler) {
    this._fadeOut();
    const ctx = this.ctx;
    const now = ctx.currentTime;
    const offset = Math.max(0, Math.min(clip.offset_s, buffer.duration));
    const duration = Math.max(0.01, Math.min(clip.duration_s, buffer.duration - offset));
    const src = ctx.createBufferSource();
    src.buffer = buffer;
    const gain = ctx.createGain();
    gain.gain.setValueAtTime(0, now);
    gain.gain.linearRampToValueAtTime(1, now + RAMP_IN_S);
    gain.gain.setValueAtTime(1, now + Math.max(RAMP_IN_S, duration - RAMP_OUT_S));
    gain.gain.linearRampToValueAtTime(0, now + duration);
    src.connect(gain).connect(this.master);
    src.start(now, offset, duration);
    const voice = { src, gain, sprite: clip.sprite, clip_id: clip.clip_id };
    src.onended = () => {
      if (this.voice === voice) this.voice = null;
      src.disconnect();
      gain.disconnect();
    };
    this.voice = voice;
    return {
      clip_id: clip.clip_id,
      sprite: clip.sprite,
      offset_s: offset,
      duration_s: duration,
      t_event: tEvent,
      t_handler: tHandler,
      t_scheduled: performance.now(),
      audio_time: now,
      context_state: ctx.state,
    };
  }

  _fadeOut() {
    const v = this.voice;
    if (!v) return;
    this.voice = null;
    const now = this.ctx.currentTime;
    const g = v.gain.gain;
    g.cancelScheduledValues(now);
    g.setValueAtTime(g.value, now);
    g.linearRampToValueAtTime(0, now + RAMP_OUT_S);
    try {
      v.src.stop(now + RAMP_OUT_S + 0.002);
    } catch {}
  }

  stop() {
    this.token++;
    this._fadeOut();
  }

  get playing() {
    return !!this.voice;
  }
}
