/**
 * Audio worklets of the Realtime Assist card, on the audio rendering thread.
 *
 * realtime-assist-capture: the microphone (the context's rate) resampled to the
 * session's input rate, as PCM16 frames of `frameMs` posted to the card.
 *
 * realtime-assist-playback: the model's audio (PCM16 at its own rate, resampled
 * to the context's) through a small jitter buffer, with per audio item counts of
 * what was played, so a barge-in can tell the model exactly what was heard.
 */

// A streaming windowed-sinc resampler (Blackman window); keeps its history across blocks.
class Resampler {
  constructor(rateIn, rateOut, halfTaps = 12) {
    this.step = rateIn / rateOut;
    this.cutoff = Math.min(1, rateOut / rateIn) * 0.92;
    this.halfTaps = Math.ceil(halfTaps / Math.min(1, rateOut / rateIn));
    // Position of the next output sample in `history` (input samples).
    this.position = this.halfTaps;
    this.history = new Float32Array(this.halfTaps);
  }

  kernel(x) {
    const width = this.halfTaps;
    if (Math.abs(x) >= width) return 0;
    const window = 0.42 + 0.5 * Math.cos((Math.PI * x) / width) + 0.08 * Math.cos((2 * Math.PI * x) / width);
    const arg = Math.PI * this.cutoff * x;
    return this.cutoff * window * (arg === 0 ? 1 : Math.sin(arg) / arg);
  }

  process(input) {
    if (this.step === 1) return Float32Array.from(input);
    const data = new Float32Array(this.history.length + input.length);
    data.set(this.history);
    data.set(input, this.history.length);
    const out = [];
    const last = data.length - this.halfTaps;
    let t = this.position;
    for (; t < last; t += this.step) {
      const centre = Math.floor(t);
      let sum = 0;
      for (let k = centre - this.halfTaps + 1; k <= centre + this.halfTaps; k += 1) {
        if (k >= 0 && k < data.length) sum += data[k] * this.kernel(t - k);
      }
      out.push(sum);
    }
    // Keep what the next block's first outputs still need.
    const keepFrom = Math.max(0, Math.floor(t) - this.halfTaps);
    this.history = data.slice(keepFrom);
    this.position = t - keepFrom;
    return Float32Array.from(out);
  }
}

const toPcm16 = (samples) => {
  const pcm = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i += 1) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    pcm[i] = s < 0 ? s * 0x8000 : s * 0x7fff;
  }
  return pcm;
};

class CaptureProcessor extends AudioWorkletProcessor {
  constructor({ processorOptions }) {
    super();
    this.rate = processorOptions.targetRate;
    this.resampler = new Resampler(sampleRate, this.rate);
    this.frameSamples = Math.round((this.rate * processorOptions.frameMs) / 1000);
    this.pending = new Float32Array(0);
    this.frames = 0;
  }

  process(inputs) {
    const channel = inputs[0]?.[0];
    if (!channel) return true;
    const resampled = this.resampler.process(channel);
    const joined = new Float32Array(this.pending.length + resampled.length);
    joined.set(this.pending);
    joined.set(resampled, this.pending.length);
    let start = 0;
    while (joined.length - start >= this.frameSamples) {
      const pcm = toPcm16(joined.subarray(start, start + this.frameSamples));
      this.frames += 1;
      this.port.postMessage({ pcm: pcm.buffer, frame: this.frames, at: currentTime }, [pcm.buffer]);
      start += this.frameSamples;
    }
    this.pending = joined.slice(start);
    return true;
  }
}

// Before playing, the jitter buffer holds this much (or waits this long for it).
const PREBUFFER_S = 0.06;
// Playback that ran dry for this long has played everything it was sent.
const DRAINED_S = 0.25;
// How often the card hears how far playback is.
const PROGRESS_S = 0.1;

class PlaybackProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.queue = [];
    this.buffered = 0;
    this.resamplers = new Map();
    this.reset();
    this.totals = { receivedMs: 0, playedMs: 0, flushes: 0, peak: 0 };
    this.port.onmessage = ({ data }) => {
      if (data.type === "audio") this.add(data);
      else if (data.type === "flush") this.flush();
    };
  }

  reset() {
    this.queue.length = 0;
    this.buffered = 0;
    this.resamplers.clear();
    // Per audio item: ms received and played since the last flush.
    this.items = new Map();
    this.playing = false;
    this.waitingSince = null;
    this.dryFrom = null;
    this.lastProgress = 0;
  }

  add({ item, rate, pcm }) {
    const ints = new Int16Array(pcm);
    const floats = Float32Array.from(ints, (v) => v / 0x8000);
    if (!this.resamplers.has(rate)) this.resamplers.set(rate, new Resampler(rate, sampleRate));
    const samples = this.resamplers.get(rate).process(floats);
    const entry = this.items.get(item) ?? { receivedMs: 0, playedMs: 0 };
    entry.receivedMs += (ints.length / rate) * 1000;
    this.items.set(item, entry);
    this.totals.receivedMs += (ints.length / rate) * 1000;
    this.queue.push({ item, samples, offset: 0 });
    this.buffered += samples.length;
    if (this.waitingSince === null) this.waitingSince = currentTime;
  }

  played() {
    const played = {};
    for (const [item, entry] of this.items) played[item] = Math.round(entry.playedMs);
    return played;
  }

  flush() {
    const played = this.played();
    const wasPlaying = this.playing || this.buffered > 0;
    this.totals.flushes += 1;
    this.reset();
    this.port.postMessage({ type: "flushed", played, wasPlaying, at: currentTime, totals: this.totals });
  }

  process(_inputs, outputs) {
    const out = outputs[0][0];
    const ready = this.buffered >= PREBUFFER_S * sampleRate ||
      (this.waitingSince !== null && currentTime - this.waitingSince >= PREBUFFER_S);
    if (!this.playing && this.buffered > 0 && ready) {
      this.playing = true;
      this.port.postMessage({ type: "started", item: this.queue[0].item, at: currentTime });
    }
    let written = 0;
    while (this.playing && written < out.length && this.queue.length) {
      const head = this.queue[0];
      const n = Math.min(out.length - written, head.samples.length - head.offset);
      for (let i = 0; i < n; i += 1) {
        const v = head.samples[head.offset + i];
        out[written + i] = v;
        if (Math.abs(v) > this.totals.peak) this.totals.peak = Math.abs(v);
      }
      head.offset += n;
      written += n;
      this.buffered -= n;
      const ms = (n / sampleRate) * 1000;
      this.items.get(head.item).playedMs += ms;
      this.totals.playedMs += ms;
      if (head.offset >= head.samples.length) this.queue.shift();
    }
    out.fill(0, written);
    if (this.playing && !this.queue.length) {
      // Ran dry: wait for more (a tool runs, the network hiccups), or it is over.
      this.playing = false;
      this.waitingSince = null;
      this.dryFrom = currentTime;
    }
    if (this.dryFrom !== null && !this.playing && currentTime - this.dryFrom >= DRAINED_S) {
      this.dryFrom = null;
      this.port.postMessage({ type: "drained", played: this.played(), totals: this.totals });
    } else if (this.playing && currentTime - this.lastProgress >= PROGRESS_S) {
      this.lastProgress = currentTime;
      this.port.postMessage({ type: "progress", played: this.played(), totals: this.totals });
    }
    if (this.playing) this.dryFrom = null;
    return true;
  }
}

registerProcessor("realtime-assist-capture", CaptureProcessor);
registerProcessor("realtime-assist-playback", PlaybackProcessor);
