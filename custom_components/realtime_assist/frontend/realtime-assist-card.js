/**
 * Realtime Assist card: a live, full-duplex conversation with a realtime agent
 * from a dashboard, over the dashboard's own Home Assistant connection.
 *
 * Tap to start (browsers give the microphone only after a gesture); then it
 * listens hands-free until stopped, or until nobody spoke for the agent's idle
 * time ("always listening" starts the next conversation by itself). The
 * microphone goes up as binary frames (PCM16 at the session's input rate); the
 * model's voice comes down in JSON events and plays through a small jitter
 * buffer. When the user talks over the model, Home Assistant asks the card to
 * flush its playback, and the card says exactly what it had played.
 *
 * No build step and no dependencies: a web component in plain modern JavaScript.
 */

const VERSION = new URL(import.meta.url).search;
const WORKLET_URL = new URL(`realtime-assist-audio.js${VERSION}`, import.meta.url).href;
const FRAME_MS = 20;
const PROGRESS_REPORT_MS = 250;
const SNAPSHOT_QUALITY = 0.8;
const DOMAIN = "realtime_assist";

const STATES = {
  off: "Tap to talk",
  starting: "Starting…",
  listening: "Listening",
  hearing: "Hearing you",
  thinking: "Thinking",
  tool: "Running a tool",
  speaking: "Speaking",
};

const ICONS = {
  mic: "M12,2A3,3 0 0,1 15,5V11A3,3 0 0,1 12,14A3,3 0 0,1 9,11V5A3,3 0 0,1 12,2M19,11C19,14.53 16.39,17.44 13,17.93V21H11V17.93C7.61,17.44 5,14.53 5,11H7A5,5 0 0,0 12,16A5,5 0 0,0 17,11H19Z",
  stop: "M18,18H6V6H18V18Z",
  camera: "M4,4H7L9,2H15L17,4H20A2,2 0 0,1 22,6V18A2,2 0 0,1 20,20H4A2,2 0 0,1 2,18V6A2,2 0 0,1 4,4M12,7A5,5 0 0,0 7,12A5,5 0 0,0 12,17A5,5 0 0,0 17,12A5,5 0 0,0 12,7M12,9A3,3 0 0,1 15,12A3,3 0 0,1 12,15A3,3 0 0,1 9,12A3,3 0 0,1 12,9Z",
  cameraOff: "M1.2,4.47L2.5,3.2L20,20.72L18.73,22L16.73,20H4A2,2 0 0,1 2,18V6C2,5.78 2.04,5.57 2.1,5.37L1.2,4.47M7,4L9,2H15L17,4H20A2,2 0 0,1 22,6V18C22,18.6 21.74,19.13 21.32,19.5L16.33,14.5C16.76,13.77 17,12.91 17,12A5,5 0 0,0 12,7C11.09,7 10.23,7.24 9.5,7.67L5.82,4H7Z",
};

const icon = (path) => `<svg viewBox="0 0 24 24" aria-hidden="true"><path d="${path}"/></svg>`;

const base64ToBuffer = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0)).buffer;

const now = () => performance.timeOrigin + performance.now();

class RealtimeAssistCard extends HTMLElement {
  static getConfigElement() {
    return document.createElement("realtime-assist-card-editor");
  }

  static getStubConfig(hass) {
    const agent = agentsOf(hass)[0];
    return { agent, mode: "tap", camera: false };
  }

  constructor() {
    super();
    this.attachShadow({ mode: "open" });
    this.state = "off";
    this.lines = [];
    this.error = "";
    this.cameraOn = false;
    // Kept across renders: the device camera's picture (frames are taken from it).
    this.video = Object.assign(document.createElement("video"), { muted: true, playsInline: true, autoplay: true });
    // What the page measured, for the tests and the benchmark (see README).
    this.stats = {
      framesSent: 0,
      sent: [],
      audioEvents: [],
      started: [],
      flushes: [],
      played: {},
      totals: { receivedMs: 0, playedMs: 0, flushes: 0, peak: 0 },
      framesShown: 0,
    };
  }

  setConfig(config) {
    this.config = { mode: "tap", camera: false, ...config };
    this.render();
  }

  set hass(hass) {
    this._hass = hass;
    if (!this.shadowRoot.firstChild) this.render();
    this.renderAllowed();
  }

  get hass() {
    return this._hass;
  }

  getCardSize() {
    return 4;
  }

  get allowed() {
    const users = this.config?.users;
    return !users?.length || users.includes(this._hass?.user?.id);
  }

  // Off the page (another view, another dashboard): the microphone and the camera too.
  disconnectedCallback() {
    this.stop();
    this.stopCamera();
  }

  // -- rendering -------------------------------------------------------------

  render() {
    if (!this.config) return;
    const name = this.config.title ?? this._hass?.states[this.config.agent]?.attributes.friendly_name ?? "Realtime Assist";
    const live = this.state !== "off";
    this.shadowRoot.innerHTML = `
      <style>
        :host { display: block; }
        ha-card { padding: 16px; }
        .head { display: flex; align-items: center; gap: 12px; }
        .title { flex: 1; font-size: 1.2em; font-weight: 500; color: var(--primary-text-color); }
        button { border: none; cursor: pointer; border-radius: 50%; display: inline-flex;
          align-items: center; justify-content: center; background: var(--secondary-background-color, #eee);
          color: var(--primary-text-color); }
        button svg { width: 24px; height: 24px; fill: currentColor; }
        .talk { width: 72px; height: 72px; background: var(--primary-color, #03a9f4); color: var(--text-primary-color, #fff); }
        .talk svg { width: 36px; height: 36px; }
        .talk.live { box-shadow: 0 0 0 6px rgba(3, 169, 244, 0.25); }
        .talk.speaking { box-shadow: 0 0 0 10px rgba(3, 169, 244, 0.35); }
        .camera { width: 44px; height: 44px; }
        .camera.on { background: var(--primary-color, #03a9f4); color: var(--text-primary-color, #fff); }
        .body { display: flex; align-items: center; gap: 16px; margin-top: 12px; }
        .state { font-size: 1.1em; color: var(--secondary-text-color); }
        .error { color: var(--error-color, #db4437); margin-top: 8px; }
        .lines { margin-top: 12px; max-height: 220px; overflow-y: auto; display: flex; flex-direction: column; gap: 6px; }
        .line { padding: 6px 10px; border-radius: 12px; max-width: 85%; line-height: 1.35; }
        .user { align-self: flex-end; background: var(--primary-color, #03a9f4); color: var(--text-primary-color, #fff); }
        .model { align-self: flex-start; background: var(--secondary-background-color, #eee); color: var(--primary-text-color); }
        .tool { align-self: flex-start; font-size: 0.85em; color: var(--secondary-text-color); }
        video { display: none; }
        video.on { display: block; width: 96px; border-radius: 8px; }
        .denied { color: var(--secondary-text-color); }
      </style>
      <ha-card>
        <div class="head"><div class="title"></div></div>
        <div class="denied" hidden>This assistant is not available to you here.</div>
        <div class="body">
          <button class="talk ${live ? "live" : ""} ${this.state === "speaking" ? "speaking" : ""}"
            aria-label="${live ? "Stop" : "Talk"}">${icon(live ? ICONS.stop : ICONS.mic)}</button>
          <div class="state">${STATES[this.state] ?? this.state}</div>
          ${this.config.camera ? `<button class="camera ${this.cameraOn ? "on" : ""}" aria-label="Camera">${icon(this.cameraOn ? ICONS.camera : ICONS.cameraOff)}</button>` : ""}
        </div>
        <div class="error">${this.error}</div>
        <div class="lines"></div>
      </ha-card>`;
    this.shadowRoot.querySelector(".title").textContent = name;
    const lines = this.shadowRoot.querySelector(".lines");
    for (const line of this.lines) {
      const div = document.createElement("div");
      div.className = `line ${line.who}`;
      div.textContent = line.text;
      lines.append(div);
    }
    lines.scrollTop = lines.scrollHeight;
    this.shadowRoot.querySelector(".talk").addEventListener("click", () => (live ? this.stop() : this.start()));
    this.shadowRoot.querySelector(".camera")?.addEventListener("click", () => this.toggleCamera());
    this.video.className = this.cameraOn ? "on" : "";
    this.shadowRoot.querySelector(".body").append(this.video);
    if (this.cameraStream && this.video.srcObject !== this.cameraStream) this.video.srcObject = this.cameraStream;
    if (this.cameraStream) this.video.play().catch(() => {});
    this.renderAllowed();
  }

  renderAllowed() {
    const denied = this.shadowRoot.querySelector(".denied");
    if (!denied) return;
    denied.hidden = this.allowed;
    this.shadowRoot.querySelector(".body").hidden = !this.allowed;
  }

  setState(state) {
    this.state = state;
    this.render();
  }

  say(who, text, append = false) {
    const last = this.lines[this.lines.length - 1];
    if (append && last?.who === who) last.text += text;
    else this.lines.push({ who, text });
    this.lines = this.lines.slice(-30);
    this.render();
  }

  // -- the conversation --------------------------------------------------------

  async start() {
    if (!this.allowed || this.state !== "off") return;
    this.error = "";
    this.setState("starting");
    try {
      this.context = new AudioContext({ latencyHint: "interactive" });
      await this.context.audioWorklet.addModule(WORKLET_URL);
      this.mic = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
      });
      this.playback = new AudioWorkletNode(this.context, "realtime-assist-playback", { outputChannelCount: [1] });
      this.playback.port.onmessage = ({ data }) => this.onPlayback(data);
      this.playback.connect(this.context.destination);
      this.unsubscribe = await this._hass.connection.subscribeMessage(
        (event) => this.onEvent(event),
        {
          type: `${DOMAIN}/browser/start`,
          ...(this.config.agent ? { agent: this.config.agent } : {}),
          language: this._hass.language,
          camera: Boolean(this.config.camera),
        },
        { resubscribe: false },
      );
      this._hass.connection.addEventListener("disconnected", this.onDisconnected);
    } catch (err) {
      this.fail(err.message ?? String(err));
    }
  }

  onDisconnected = () => this.end("The connection to Home Assistant was lost.");

  ready({ conversation, audio_handler: handler, input_rate: rate, camera, frame_interval_ms: interval, long_side: longSide }) {
    this.conversation = conversation;
    this.camera = { mode: camera, interval, longSide };
    this.capture = new AudioWorkletNode(this.context, "realtime-assist-capture", {
      processorOptions: { targetRate: rate, frameMs: FRAME_MS },
    });
    const socket = this._hass.connection.socket;
    this.capture.port.onmessage = ({ data }) => {
      const frame = new Uint8Array(1 + data.pcm.byteLength);
      frame[0] = handler;
      frame.set(new Uint8Array(data.pcm), 1);
      socket.send(frame);
      this.stats.framesSent += 1;
      this.stats.sent.push([data.frame, now()]);
      if (this.stats.sent.length > 3000) this.stats.sent.splice(0, 1000);
    };
    this.micSource = this.context.createMediaStreamSource(this.mic);
    this.micSource.connect(this.capture);
    // A worklet runs while it leads somewhere: its output is silence.
    this.capture.connect(this.context.destination);
    if (this.cameraOn) this.streamCamera();
  }

  onEvent(event) {
    switch (event.type) {
      case "ready":
        this.ready(event);
        break;
      case "state":
        this.setState(event.state);
        break;
      case "user":
        if (event.final) this.say("user", event.text);
        break;
      case "model":
        this.say("model", event.text, true);
        break;
      case "tool":
        this.say("tool", `⚙ ${event.name}`);
        break;
      case "audio": {
        const pcm = base64ToBuffer(event.data);
        this.stats.audioEvents.push([event.item, now(), pcm.byteLength / 2 / event.rate * 1000]);
        if (this.stats.audioEvents.length > 3000) this.stats.audioEvents.splice(0, 1000);
        this.playback.port.postMessage({ type: "audio", item: event.item, rate: event.rate, pcm }, [pcm]);
        break;
      }
      case "flush":
        this.stats.flushes.push({ asked: now() });
        this.playback.port.postMessage({ type: "flush" });
        break;
      case "snapshot":
        this.sendFrame();
        break;
      case "error":
        this.error = event.message;
        this.render();
        break;
      case "end":
        this.end(event.reason === "error" ? event.message : "", event.reason);
        break;
      default:
        break;
    }
  }

  onPlayback(data) {
    this.stats.totals = data.totals ?? this.stats.totals;
    if (data.played) Object.assign(this.stats.played, data.played);
    const played = (extra) => this._hass.connection.sendMessagePromise({
      type: `${DOMAIN}/browser/played`, conversation: this.conversation, played: data.played, ...extra,
    }).catch(() => {});
    switch (data.type) {
      case "started":
        this.stats.started.push([data.item, this.outputTime(data.at)]);
        break;
      case "flushed": {
        const flush = this.stats.flushes[this.stats.flushes.length - 1] ?? {};
        Object.assign(flush, { flushed: now(), played: data.played, wasPlaying: data.wasPlaying });
        this.stats.played = {};
        played({ final: true });
        break;
      }
      case "drained":
        this.stats.played = {};
        played({ drained: true });
        if (this.state === "speaking") this.setState("listening");
        break;
      case "progress":
        if (now() - (this.lastReport ?? 0) >= PROGRESS_REPORT_MS) {
          this.lastReport = now();
          played({});
        }
        break;
      default:
        break;
    }
  }

  // When a moment of the audio clock reached the speaker, in page time (ms since 1970).
  outputTime(contextTime) {
    const stamp = this.context.getOutputTimestamp();
    return performance.timeOrigin + stamp.performanceTime + (contextTime - stamp.contextTime) * 1000;
  }

  async stop() {
    if (this.state === "off") return;
    this.muteMicrophone();
    if (this.conversation !== undefined) {
      await this._hass.connection.sendMessagePromise({ type: `${DOMAIN}/browser/stop`, conversation: this.conversation }).catch(() => {});
    }
    this.end("");
  }

  fail(message) {
    this.end(message);
  }

  // No more microphone frames: the conversation they were for is ending.
  muteMicrophone() {
    if (this.capture) this.capture.port.onmessage = null;
  }

  end(message, reason) {
    this.muteMicrophone();
    this.unsubscribe?.().catch(() => {});
    this.unsubscribe = undefined;
    this._hass?.connection.removeEventListener("disconnected", this.onDisconnected);
    this.mic?.getTracks().forEach((track) => track.stop());
    this.context?.close().catch(() => {});
    this.mic = this.context = this.capture = this.playback = this.conversation = undefined;
    clearInterval(this.cameraTimer);
    this.error = message ?? "";
    this.setState("off");
    if (reason === "idle" && this.config.mode === "always") this.start();
  }

  // -- the device's camera -------------------------------------------------------

  async toggleCamera() {
    if (this.cameraOn) {
      this.stopCamera();
      this.render();
      return;
    }
    try {
      this.cameraStream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
    } catch (err) {
      this.error = `Camera: ${err.message ?? err}`;
      this.render();
      return;
    }
    this.cameraOn = true;
    this.render();
    if (this.conversation !== undefined) this.streamCamera();
  }

  stopCamera() {
    this.cameraOn = false;
    clearInterval(this.cameraTimer);
    this.cameraStream?.getTracks().forEach((track) => track.stop());
    this.cameraStream = undefined;
  }

  streamCamera() {
    if (this.camera?.mode !== "video") return;
    clearInterval(this.cameraTimer);
    this.cameraTimer = setInterval(() => this.sendFrame(), this.camera.interval);
  }

  async sendFrame() {
    const { video } = this;
    if (!this.cameraOn || this.conversation === undefined || !video?.videoWidth) return;
    const scale = Math.min(1, this.camera.longSide / Math.max(video.videoWidth, video.videoHeight));
    const canvas = document.createElement("canvas");
    canvas.width = Math.round(video.videoWidth * scale);
    canvas.height = Math.round(video.videoHeight * scale);
    canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
    const jpeg = canvas.toDataURL("image/jpeg", SNAPSHOT_QUALITY).split(",")[1];
    this.stats.framesShown += 1;
    await this._hass.connection.sendMessagePromise({
      type: `${DOMAIN}/browser/frame`, conversation: this.conversation, image: jpeg,
    }).catch(() => {});
  }
}

const agentsOf = (hass) =>
  Object.keys(hass?.states ?? {}).filter(
    (id) => id.startsWith("conversation.") && hass.entities?.[id]?.platform === DOMAIN,
  );

/** The visual editor: which agent, how it listens, whether the camera may be used, for whom. */
class RealtimeAssistCardEditor extends HTMLElement {
  setConfig(config) {
    this.config = config;
    this.render();
  }

  set hass(hass) {
    const first = !this._hass;
    this._hass = hass;
    if (first) {
      this.render();
      hass.callWS({ type: "config/auth/list" }).then((users) => {
        this.users = users.filter((user) => !user.system_generated && user.is_active);
        this.render();
      }).catch(() => {});
    }
  }

  changed(patch) {
    this.config = { ...this.config, ...patch };
    for (const [key, value] of Object.entries(patch)) if (value === undefined) delete this.config[key];
    this.dispatchEvent(new CustomEvent("config-changed", { detail: { config: this.config }, bubbles: true, composed: true }));
  }

  render() {
    if (!this.config || !this._hass) return;
    const agents = agentsOf(this._hass);
    const chosen = new Set(this.config.users ?? []);
    const name = (id) => this._hass.states[id]?.attributes.friendly_name ?? id;
    this.innerHTML = `
      <style>
        .row { display: flex; flex-direction: column; gap: 4px; margin-bottom: 12px; }
        .row label { font-weight: 500; }
        select, input[type=text] { padding: 6px; font-size: 1em; }
      </style>
      <div class="row"><label for="agent">Agent</label>
        <select id="agent">${agents.map((id) => `<option value="${id}" ${id === this.config.agent ? "selected" : ""}>${name(id)}</option>`).join("")}</select></div>
      <div class="row"><label for="mode">Listening</label>
        <select id="mode">
          <option value="tap" ${this.config.mode !== "always" ? "selected" : ""}>Tap to talk, until it has been quiet a while</option>
          <option value="always" ${this.config.mode === "always" ? "selected" : ""}>Always listening after the first tap</option>
        </select></div>
      <div class="row"><label><input type="checkbox" id="camera" ${this.config.camera ? "checked" : ""}> The assistant may see through this device's camera</label></div>
      <div class="row"><label>Only for these users (none ticked: everyone)</label>
        ${(this.users ?? []).map((user) => `<label><input type="checkbox" data-user="${user.id}" ${chosen.has(user.id) ? "checked" : ""}> ${user.name}</label>`).join("")}</div>`;
    this.querySelector("#agent").addEventListener("change", (ev) => this.changed({ agent: ev.target.value }));
    this.querySelector("#mode").addEventListener("change", (ev) => this.changed({ mode: ev.target.value }));
    this.querySelector("#camera").addEventListener("change", (ev) => this.changed({ camera: ev.target.checked }));
    for (const box of this.querySelectorAll("[data-user]")) {
      box.addEventListener("change", () => {
        const users = [...this.querySelectorAll("[data-user]:checked")].map((el) => el.dataset.user);
        this.changed({ users: users.length ? users : undefined });
      });
    }
  }
}

customElements.define("realtime-assist-card", RealtimeAssistCard);
customElements.define("realtime-assist-card-editor", RealtimeAssistCardEditor);
window.customCards = window.customCards ?? [];
window.customCards.push({
  type: "realtime-assist-card",
  name: "Realtime Assist",
  description: "Talk with a realtime agent, hands-free: interrupt it any time, show it things.",
  preview: false,
});
