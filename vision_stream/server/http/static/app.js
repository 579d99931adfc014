// vision-stream's page: the session list, one session's live view, and "use my camera".
// Plain JavaScript, no build step, no dependencies. Event text only ever reaches the
// page through textContent (never innerHTML): model output is untrusted input.
"use strict";

const LIST_EVERY_MS = 2000;   // session list refresh
const FRAME_EVERY_MS = 1000;  // latest-frame refresh of the live view
const SEND_EVERY_MS = 1000;   // camera: one JPEG a second (the server samples at 1 fps by default)
const MAX_SIDE = 768;         // camera JPEG longest side, as the server's own sampler does
const JPEG_QUALITY = 0.8;
const PCM_RATE = 16000;       // what the Stream input expects for audio: PCM16 LE mono 16 kHz
const PCM_CHUNK = 1600;       // 100 ms of audio per WebSocket message
const MAX_ITEMS = 60;         // each feed keeps its newest items only
const MAX_BUFFERED = 1 << 20; // camera: skip a frame while the socket still holds 1 MiB unsent
const DRAIN_MS = 15000;       // camera stop: how long the ended session may take to drain
const TAG_VIDEO = 0x01;
const TAG_AUDIO = 0x02;
const PAYLOADS = ["sessionStarted", "commentary", "transcript", "detection", "audioOut",
  "backendChanged", "stats", "error", "sessionEnded", "alert"];

// ------------------------------------------------------------------ helpers

const $ = (id) => document.getElementById(id);

/** An element with text children (strings become text nodes, so markup in them stays text). */
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Prepend ``item`` to a feed, keeping its newest MAX_ITEMS. */
function pushItem(list, item) {
  list.prepend(item);
  while (list.children.length > MAX_ITEMS) list.lastElementChild.remove();
}

function setStatus(id, text, isError = false) {
  const node = $(id);
  node.textContent = text;
  node.classList.toggle("error", isError);
}

function snake(name) {
  return name.replace(/[A-Z]/g, (c) => "_" + c.toLowerCase());
}

// ------------------------------------------------------------------ token

// Kept for this tab only (sessionStorage): sent as a Bearer header on fetch; browsers
// cannot set headers on EventSource or WebSocket upgrades, so those carry ?access_token=.
const token = {
  get: () => sessionStorage.getItem("vision-stream-token") || "",
  set: (value) => value ? sessionStorage.setItem("vision-stream-token", value)
    : sessionStorage.removeItem("vision-stream-token"),
  headers() {
    const t = this.get();
    return t ? { Authorization: `Bearer ${t}` } : {};
  },
  url(path) {
    const t = this.get();
    if (!t) return path;
    return path + (path.includes("?") ? "&" : "?") + "access_token=" + encodeURIComponent(t);
  },
};

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** fetch with the token; JSON errors ({"error": {...}}) become ApiError with the server's message. */
async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...token.headers(), ...(options.headers || {}) } });
  if (!response.ok) {
    let message = `HTTP ${response.status}`;
    try {
      const body = await response.json();
      if (body && body.error && body.error.message) message = `${body.error.status || response.status}: ${body.error.message}`;
    } catch (_) { /* not JSON */ }
    throw new ApiError(response.status, message);
  }
  return response;
}

// ------------------------------------------------------------------ session list

function formatCost(stats) {
  const cost = stats && Number(stats.estimatedCostUsd || 0);
  return cost > 0 ? `$${cost.toFixed(cost < 0.01 ? 4 : 2)}` : "";
}

function sessionRow(info) {
  const stats = info.stats || {};
  const id = info.sessionId || "";
  const frames = `${stats.framesSent || 0} sent / ${stats.framesIn || 0} in`;
  const stop = el("button", { type: "button", class: "small", onclick: (e) => {
    e.stopPropagation();
    stopSession(id);
  } }, "Stop");
  const row = el("tr", { "data-session": id, tabindex: "0", title: "Open the live view" },
    el("td", { class: "id" }, id),
    el("td", { class: `state state-${info.state || ""}` }, info.state || ""),
    el("td", {}, info.backend || ""),
    el("td", {}, frames),
    el("td", {}, formatCost(stats)),
    el("td", {}, ["ended", "failed"].includes(info.state) ? "" : stop));
  const open = () => live.attachEvents(id);
  row.addEventListener("click", open);
  row.addEventListener("keydown", (e) => { if (e.key === "Enter") open(); });
  if (id === live.sessionId) row.classList.add("selected");
  return row;
}

async function refreshSessions() {
  try {
    const response = await api("/v1/sessions");
    const body = await response.json();
    const sessions = body.sessions || [];
    $("sessions").tBodies[0].replaceChildren(...sessions.map(sessionRow));
    setStatus("sessions-status", sessions.length ? "" : "No sessions yet: use your camera, or start one with `vision-stream watch`.");
  } catch (err) {
    const hint = err.status === 401 ? " (enter a token above)" : "";
    setStatus("sessions-status", `Cannot list sessions: ${err.message}${hint}`, true);
  }
}

async function stopSession(id) {
  try {
    await api(`/v1/sessions/${encodeURIComponent(id)}`, { method: "DELETE" });
  } catch (err) {
    setStatus("sessions-status", `Cannot stop ${id}: ${err.message}`, true);
  }
  refreshSessions();
}

// ------------------------------------------------------------------ live view

/** One session's live view, fed either by SSE (a session in the list) or by the camera socket. */
class LiveView {
  constructor() {
    this.sessionId = "";
    this.source = null;       // EventSource, when following a listed session
    this.frameTimer = 0;
    this.frameUrl = "";       // object URL of the frame on show
    this.turns = new Map();   // commentary turnId -> list item (partials update it in place)
    this.partial = {};        // transcript source -> list item of the current partial
    this.lastSeq = 0;
  }

  /** Show ``id`` with no event feed attached yet (clears the previous session's view). */
  reset(id) {
    this.detach();
    this.sessionId = id;
    this.turns.clear();
    this.partial = {};
    this.lastSeq = 0;
    for (const list of ["alerts", "commentary", "detections", "transcripts", "notices", "stats"]) $(list).replaceChildren();
    $("alerts-panel").hidden = true;
    $("latest-frame").removeAttribute("src");
    $("live-session").textContent = id;
    $("live").hidden = !id;
    setStatus("live-status", id ? "Waiting for events…" : "");
    if (id) {
      history.replaceState(null, "", `#session=${encodeURIComponent(id)}`);
      this.frameTimer = setInterval(() => this.refreshFrame(), FRAME_EVERY_MS);
      this.refreshFrame();
    }
    for (const row of document.querySelectorAll("#sessions tr[data-session]")) {
      row.classList.toggle("selected", row.dataset.session === id);
    }
  }

  /** Follow a session's events over SSE; the browser resumes with Last-Event-ID on its own. */
  attachEvents(id) {
    if (id === this.sessionId && this.source) return;
    this.reset(id);
    const source = new EventSource(token.url(`/v1/sessions/${encodeURIComponent(id)}/events`));
    const onEvent = (message) => this.handle(JSON.parse(message.data));
    // The SSE event name is the payload's name; listen under both spellings and the default.
    source.addEventListener("message", onEvent);
    for (const name of PAYLOADS) {
      source.addEventListener(name, onEvent);
      if (snake(name) !== name) source.addEventListener(snake(name), onEvent);
    }
    // The server ends a stream it cannot continue (e.g. events left the retention window)
    // with a ``stream_error`` frame holding the JSON error body.
    source.addEventListener("stream_error", (message) => {
      let text = message.data;
      try { text = JSON.parse(message.data).error.message; } catch (_) { /* show it raw */ }
      setStatus("live-status", `The event stream ended: ${text}`, true);
      source.close();
    });
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) setStatus("live-status", "The event stream closed.", true);
    });
    this.source = source;
  }

  detach() {
    if (this.source) this.source.close();
    this.source = null;
    clearInterval(this.frameTimer);
    this.frameTimer = 0;
  }

  async refreshFrame() {
    const id = this.sessionId;
    if (!id) return;
    try {
      const response = await api(`/v1/sessions/${encodeURIComponent(id)}/frames/latest`, { cache: "no-store" });
      const blob = await response.blob();
      if (id !== this.sessionId) return;
      const old = this.frameUrl;
      this.frameUrl = URL.createObjectURL(blob);
      $("latest-frame").src = this.frameUrl;
      if (old) URL.revokeObjectURL(old);
    } catch (_) {
      // 404 until the model has seen a frame; a 416/410 once it left the ring: try again next tick.
    }
  }

  /** One Event (protobuf JSON mapping, camelCase). */
  handle(event) {
    if (event.sessionId && !this.sessionId) this.reset(event.sessionId);
    const seq = Number(event.seq || 0);
    if (seq && seq <= this.lastSeq) return;  // a resumed stream never shows an event twice
    if (seq) this.lastSeq = seq;
    const kind = PAYLOADS.find((name) => name in event);
    if (!kind) return;
    const body = event[kind];
    const at = event.mediaTime !== undefined ? `${Number(event.mediaTime).toFixed(1)} s` : "";
    switch (kind) {
      case "sessionStarted":
        setStatus("live-status", `Started on ${body.backend || "?"}${body.model ? " (" + body.model + ")" : ""}: ${body.source || ""}`);
        break;
      case "commentary": this.commentary(body, at); break;
      case "transcript": this.transcript(body, at); break;
      case "detection": this.detection(event, body, at); break;
      case "backendChanged":
        pushItem($("notices"), el("li", { class: "switch" }, at && el("time", {}, at),
          `${body.fromBackend || "?"} → ${body.toBackend || "?"}`, body.reason ? `: ${body.reason}` : ""));
        break;
      case "error":
        pushItem($("notices"), el("li", { class: "error" }, at && el("time", {}, at),
          `${body.code || "error"}: ${body.message || ""}`, body.retryable ? " (retrying)" : ""));
        break;
      case "alert": this.alert(body, at); break;
      case "stats": this.stats(body); break;
      case "sessionEnded":
        setStatus("live-status", `Session ended: ${body.reason || ""}`);
        if (body.totals) this.stats(body.totals);
        if (this.source) this.source.close();  // else EventSource reconnects to an ended session forever
        this.source = null;
        this.refreshFrame();
        break;
      default: break;  // audioOut: the page does not play the model's voice
    }
  }

  commentary(body, at) {
    const turn = body.turnId || "";
    let item = turn ? this.turns.get(turn) : undefined;
    if (!item) {
      item = el("li", { class: "commentary" }, el("time", {}, at), el("span", {}));
      pushItem($("commentary"), item);
      if (turn) this.turns.set(turn, item);
      if (this.turns.size > MAX_ITEMS) this.turns.delete(this.turns.keys().next().value);
    }
    // Partials carry the turn so far; the final carries the whole text.
    item.lastElementChild.textContent = body.text || "";
    item.classList.toggle("partial", !body.final);
  }

  transcript(body, at) {
    const who = body.source === "SOURCE_OUTPUT" ? "model" : "heard";
    let item = this.partial[who];
    if (!item) {
      item = el("li", { class: `transcript ${who}` }, el("time", {}, at), el("b", {}, `${who}: `), el("span", {}));
      pushItem($("transcripts"), item);
    }
    item.lastElementChild.textContent = body.text || "";
    item.classList.toggle("partial", !body.final);
    this.partial[who] = body.final ? undefined : item;
  }

  detection(event, body, at) {
    const confidence = body.confidence ? ` ${Math.round(Number(body.confidence) * 100)}%` : "";
    const severity = body.severity || "info";
    const item = el("li", { class: `detection severity-${severity}` },
      this.thumbnail(body),
      el("div", {},
        el("time", {}, at),
        el("b", {}, body.functionName ? `${body.functionName}()` : body.label || "detection"),
        el("span", { class: "badge" }, severity + confidence),
        el("p", {}, body.description || body.argumentsJson || "")));
    pushItem($("detections"), item);
  }

  /** Alerts go above everything else, with the frame they are based on (the evidence). */
  alert(body, at) {
    const resolved = body.state === "STATE_RESOLVED";
    const confidence = body.confidence ? ` ${Math.round(Number(body.confidence) * 100)}%` : "";
    const verification = body.verification && body.verification.requested
      ? (body.verification.confirmed ? "verified" : "unverified") : "";
    const item = el("li", { class: `alert ${resolved ? "resolved" : "fired"} severity-${body.severity || "medium"}` },
      resolved ? null : this.thumbnail(body),
      el("div", {},
        el("time", {}, at),
        el("b", {}, `${resolved ? "resolved" : "ALERT"}: ${body.condition || body.conditionId || ""}`),
        el("span", { class: "badge" }, [body.builtin ? "camera health" : body.backend, confidence, verification]
          .filter(Boolean).join(" ")),
        el("p", {}, body.evidence || "")));
    $("alerts-panel").hidden = false;
    pushItem($("alerts"), item);
  }

  /** The frame a detection (or an alert) refers to, when it names some (frameIds: the newest), with its
   * region outlined on top; none for a detection of no frame (e.g. audio_activity). */
  thumbnail(detection) {
    const ids = detection.frameIds || [];
    if (!ids.length) return null;
    const frameId = ids[ids.length - 1];
    const img = el("img", { class: "thumb", alt: `frame ${frameId} of this detection`, title: `frame ${frameId}` });
    const box = el("span", { class: "thumb-box" }, img);
    const r = detection.region;
    if (r && (r.width || r.height)) {
      const pct = (v) => `${(Number(v || 0) * 100).toFixed(1)}%`;
      box.append(el("span", { class: "region", style: `left:${pct(r.x)};top:${pct(r.y)};width:${pct(r.width)};height:${pct(r.height)}` }));
    }
    const id = this.sessionId;
    api(`/v1/sessions/${encodeURIComponent(id)}/frames/${encodeURIComponent(frameId)}`)
      .then((response) => response.blob())
      .then((blob) => {
        img.addEventListener("load", () => URL.revokeObjectURL(img.src), { once: true });  // decoded: free the blob
        img.src = URL.createObjectURL(blob);
      })
      .catch(() => { box.replaceChildren(el("small", { class: "gone" }, "frame no longer kept")); });
    return box;
  }

  stats(s) {
    const rows = [
      ["frames in", s.framesIn], ["sampled", s.framesSampled], ["sent", s.framesSent], ["dropped", s.framesDropped],
      ["fps in / out", s.fpsIn !== undefined || s.fpsOut !== undefined
        ? `${Number(s.fpsIn || 0).toFixed(1)} / ${Number(s.fpsOut || 0).toFixed(1)}` : undefined],
      ["audio chunks", s.audioChunksIn], ["prompts", s.promptsSent], ["reconnects", s.reconnects],
      ["bad packets", s.badPackets], ["media seconds", s.mediaSeconds !== undefined ? Number(s.mediaSeconds).toFixed(1) : undefined],
      ["tokens in / out", s.promptTokens || s.responseTokens ? `${s.promptTokens || 0} / ${s.responseTokens || 0}` : undefined],
      ["estimated cost", formatCost(s) || undefined],
      ["source", s.sourceState],
    ];
    $("stats").replaceChildren(...rows.filter(([, v]) => v !== undefined && v !== "")
      .flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  }
}

const live = new LiveView();

// ------------------------------------------------------------------ camera

/** getUserMedia -> 1 JPEG/s + 16 kHz PCM16 over /v1/stream; the events feed the live view. */
class Camera {
  constructor() {
    this.stream = null;
    this.socket = null;
    this.timer = 0;
    this.audio = null;
    this.canvas = document.createElement("canvas");
  }

  async start() {
    setStatus("camera-status", "Asking for the camera…");
    this.stream = await openMedia();
    const video = $("camera-preview");
    video.srcObject = this.stream;
    video.hidden = false;
    await video.play();
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}${token.url("/v1/stream")}`);
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    let sessionId = "";  // this socket's session (an ended socket may still be draining)
    socket.addEventListener("open", () => this.onOpen());
    socket.addEventListener("message", (m) => {
      if (typeof m.data !== "string") return;
      const event = JSON.parse(m.data);
      if (!sessionId && event.sessionId) sessionId = event.sessionId;
      // Into the live view unless the user opened another session meanwhile.
      if (!live.sessionId || live.sessionId === sessionId) live.handle(event);
    });
    socket.addEventListener("close", (e) => this.onClose(e, socket));
    $("camera-start").disabled = true;
    $("camera-stop").disabled = false;
  }

  onOpen() {
    // First message: SessionConfig JSON. The server assigns the id; events name it.
    const config = { backend: $("cam-backend").value };
    const interval = Number($("cam-interval").value);
    if (interval > 0) config.commentaryInterval = interval;
    this.socket.send(JSON.stringify(config));
    live.reset("");
    setStatus("camera-status", "Streaming: one frame a second" + (this.stream.getAudioTracks().length ? " and your microphone." : " (no microphone)."));
    $("prompt-form").hidden = false;
    this.timer = setInterval(() => this.sendFrame(), SEND_EVERY_MS);
    this.sendFrame();
    if (this.stream.getAudioTracks().length) {
      const stream = this.stream;
      startAudio(stream, (pcm) => this.send(TAG_AUDIO, pcm))
        .then((a) => { if (this.stream === stream) this.audio = a; else a.close(); })  // stopped meanwhile
        .catch((err) => setStatus("camera-status", `Streaming video; microphone failed: ${err.message}`, true));
    }
  }

  /** The server closes with 1000 after session_ended, else with the error's code and reason. */
  onClose(event, socket) {
    if (this.socket && this.socket !== socket) return;  // an earlier camera session finished draining
    const reason = event.reason ? `: ${event.reason}` : "";
    const normal = event.code === 1000 || event.code === 1005;
    setStatus("camera-status", normal ? "Camera session ended." : `Closed by the server (${event.code}${reason}).`, !normal);
    this.stop(false);
  }

  send(tag, bytes) {
    const socket = this.socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) return;
    const message = new Uint8Array(bytes.byteLength + 1);
    message[0] = tag;
    message.set(new Uint8Array(bytes.buffer || bytes, bytes.byteOffset || 0, bytes.byteLength), 1);
    socket.send(message);
  }

  sendFrame() {
    const video = $("camera-preview");
    const socket = this.socket;
    if (!socket || !video.videoWidth) return;
    // Live media is latest-wins: skip this frame rather than queue behind a slow link.
    if (socket.bufferedAmount > MAX_BUFFERED) return;
    const scale = Math.min(1, MAX_SIDE / Math.max(video.videoWidth, video.videoHeight));
    this.canvas.width = Math.round(video.videoWidth * scale);
    this.canvas.height = Math.round(video.videoHeight * scale);
    this.canvas.getContext("2d").drawImage(video, 0, 0, this.canvas.width, this.canvas.height);
    this.canvas.toBlob(async (blob) => {
      if (blob) this.send(TAG_VIDEO, new Uint8Array(await blob.arrayBuffer()));
    }, "image/jpeg", JPEG_QUALITY);
  }

  prompt(text) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify({ prompt: { text } }));
  }

  stop(close = true) {
    clearInterval(this.timer);
    this.timer = 0;
    if (this.audio) this.audio.close();
    this.audio = null;
    if (this.stream) for (const track of this.stream.getTracks()) track.stop();
    this.stream = null;
    const socket = this.socket;
    this.socket = null;
    if (close && socket && socket.readyState === WebSocket.OPEN) {
      // End the input and let the session drain: its last events (session_ended) still arrive,
      // then the server closes with 1000. A server that does not within DRAIN_MS is left.
      socket.send(JSON.stringify({ end: true }));
      setStatus("camera-status", "Ending: the session finishes what it has…");
      setTimeout(() => { if (socket.readyState <= WebSocket.OPEN) socket.close(1000, "stopped"); }, DRAIN_MS);
    } else if (close && socket && socket.readyState === WebSocket.CONNECTING) {
      socket.close(1000, "stopped");
    }
    $("camera-preview").hidden = true;
    $("prompt-form").hidden = true;
    $("camera-start").disabled = false;
    $("camera-stop").disabled = true;
  }
}

async function openMedia() {
  const video = { width: { ideal: 1280 }, height: { ideal: 720 } };
  try {
    return await navigator.mediaDevices.getUserMedia({ video, audio: { channelCount: 1, echoCancellation: true } });
  } catch (_) {
    return navigator.mediaDevices.getUserMedia({ video });  // no microphone: video only
  }
}

// The worklet copies each 128-sample render quantum to the page; resampling happens there.
const WORKLET = `registerProcessor("pcm-tap", class extends AudioWorkletProcessor {
  process(inputs) { const c = inputs[0][0]; if (c) this.port.postMessage(c.slice(0)); return true; }
});`;

/** Microphone -> PCM16 LE mono 16 kHz chunks of PCM_CHUNK samples, given to ``send``. */
async function startAudio(stream, send) {
  let context;
  let input;
  try {
    // Chromium resamples the microphone into a 16 kHz context itself.
    context = new AudioContext({ sampleRate: PCM_RATE });
    input = context.createMediaStreamSource(stream);
  } catch (_) {
    // Firefox refuses a stream source in a context at another rate: resample below instead.
    if (context) context.close();
    context = new AudioContext();
    input = context.createMediaStreamSource(stream);
  }
  const resample = resampler(context.sampleRate, PCM_RATE);
  const pending = new Int16Array(PCM_CHUNK);
  let filled = 0;
  const onSamples = (floats) => {
    for (const x of resample(floats)) {
      pending[filled++] = Math.max(-32768, Math.min(32767, Math.round(x * 32767)));
      if (filled === PCM_CHUNK) {
        send(new Uint8Array(pending.buffer.slice(0)));  // Int16Array is little-endian on every browser platform
        filled = 0;
      }
    }
  };
  let node;
  if (context.audioWorklet) {
    const url = URL.createObjectURL(new Blob([WORKLET], { type: "text/javascript" }));
    await context.audioWorklet.addModule(url);
    URL.revokeObjectURL(url);
    node = new AudioWorkletNode(context, "pcm-tap");
    node.port.onmessage = (m) => onSamples(m.data);
  } else {
    node = context.createScriptProcessor(4096, 1, 1);  // older browsers
    node.onaudioprocess = (e) => onSamples(e.inputBuffer.getChannelData(0));
  }
  // A muted sink keeps the graph pulling without playing the microphone back.
  const mute = context.createGain();
  mute.gain.value = 0;
  input.connect(node).connect(mute).connect(context.destination);
  return { close: () => context.close() };
}

/** Linear-interpolating resampler from ``from`` Hz to ``to`` Hz, keeping phase across calls. */
function resampler(from, to) {
  if (from === to) return (x) => x;
  const step = from / to;
  let pos = 0;       // position of the next output sample, in input samples, relative to ``prev``
  let prev = 0;      // last input sample of the previous call
  return (input) => {
    const out = [];
    while (pos < input.length) {
      const i = Math.floor(pos);
      const a = i === 0 ? prev : input[i - 1];
      const b = input[i];
      const t = pos - i;
      out.push(a + (b - a) * t);
      pos += step;
    }
    pos -= input.length;
    prev = input[input.length - 1];
    return out;
  };
}

const camera = new Camera();

// ------------------------------------------------------------------ wiring

function init() {
  $("token").value = token.get();
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    token.set($("token").value.trim());
    refreshSessions();
    if (live.sessionId && live.source) { const id = live.sessionId; live.sessionId = ""; live.attachEvents(id); }
  });
  $("camera-start").addEventListener("click", () => camera.start().catch((err) => {
    setStatus("camera-status", `Cannot use the camera: ${err.message}`, true);
    camera.stop();
  }));
  $("camera-stop").addEventListener("click", () => camera.stop());
  $("prompt-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("prompt").value.trim();
    if (text) camera.prompt(text);
    $("prompt").value = "";
  });
  const match = /session=([^&]+)/.exec(location.hash);
  if (match) live.attachEvents(decodeURIComponent(match[1]));
  refreshSessions();
  setInterval(refreshSessions, LIST_EVERY_MS);
}

init();
