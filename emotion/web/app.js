// The page of `test.py --serve`: the webcam's frames go to the server as JPEG over a WebSocket, one at a time
// (the next leaves when the answer to the last one is back, so the newest frame always wins), and each answer's
// faces are drawn over the video. window.emotionState holds what the page shows, for tests and the curious.
"use strict";

const token = new URLSearchParams(location.search).get("token");
const query = token ? `?token=${encodeURIComponent(token)}` : "";
const video = document.getElementById("camera");
const overlay = document.getElementById("overlay");
const statusLine = document.getElementById("status");
const notice = document.getElementById("notice");
const scoresBox = document.getElementById("scores");
const grab = document.createElement("canvas");
const MAX_FPS = 30;

const state = {
  classNames: [], colours: {}, faces: [], sent: 0, answered: 0, dropped: 0, labelledFrames: 0,
  fps: 0, latencyMs: 0, error: null, lastAnswer: null,
};
window.emotionState = state;

function say(text) { notice.textContent = text; }

async function start() {
  const health = await fetch(`health${query}`);
  if (!health.ok) throw new Error((await health.json()).error);
  const info = await health.json();
  state.classNames = info.class_names;
  state.colours = info.class_colours;
  const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  video.srcObject = stream;
  await video.play();
  connect();
}

function connect() {
  const socket = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws${query}`);
  let sentAt = 0;
  let lastAnswerAt = 0;
  const send = () => {
    if (socket.readyState !== WebSocket.OPEN || !video.videoWidth) return void setTimeout(send, 50);
    grab.width = video.videoWidth;
    grab.height = video.videoHeight;
    grab.getContext("2d").drawImage(video, 0, 0);
    grab.toBlob((blob) => { sentAt = performance.now(); state.sent += 1; socket.send(blob); }, "image/jpeg", 0.85);
  };
  socket.onopen = () => {
    document.getElementById("snapshot").disabled = false;
    document.getElementById("calibrate").disabled = false;
    send();
  };
  socket.onmessage = (event) => {
    const answer = JSON.parse(event.data);
    state.lastAnswer = answer;
    if (answer.calibrate) return say(answer.calibrate);
    if (answer.error) { state.error = answer.error; say(answer.error); }
    if (answer.dropped) state.dropped += 1;
    if (answer.faces) {
      if (state.error) { state.error = null; say(""); } // a good frame ends the last one's error
      const now = performance.now();
      state.latencyMs = now - sentAt;
      if (lastAnswerAt) state.fps = state.fps ? 0.9 * state.fps + 100 / (now - lastAnswerAt) : 1000 / (now - lastAnswerAt);
      lastAnswerAt = now;
      state.answered += 1;
      state.faces = answer.faces;
      if (answer.faces.some((face) => face.label)) state.labelledFrames += 1;
      draw();
    }
    // At most MAX_FPS frames a second: the server drops the frames above its per-connection limit (30).
    if ("frame" in answer) setTimeout(send, Math.max(0, 1000 / MAX_FPS - (performance.now() - sentAt)));
  };
  socket.onclose = (event) => {
    statusLine.textContent = "disconnected";
    say(event.reason || "the server refused or closed the connection (too many open?): reload the page to try again");
  };
  document.getElementById("calibrate").onclick = () => socket.send(JSON.stringify({ calibrate: true }));
}

function draw(context = overlay.getContext("2d"), mirrored = true) {
  const { videoWidth: width, videoHeight: height } = video;
  if (context.canvas === overlay) { overlay.width = width; overlay.height = height; }
  context.save();
  context.font = "16px system-ui, sans-serif";
  context.textBaseline = "bottom";
  for (const face of state.faces) {
    let [x, y, w, h] = face.box;
    if (mirrored) x = width - x - w; // the video is shown as a mirror, as people expect to see themselves
    const colour = state.colours[face.label] || "#999";
    context.strokeStyle = colour;
    context.lineWidth = 3;
    context.strokeRect(x, y, w, h);
    const text = `${face.label} ${Math.round(100 * face.scores[face.label])}%`;
    const textWidth = context.measureText(text).width + 8;
    context.fillStyle = colour;
    context.fillRect(x, Math.max(y - 22, 0), textWidth, 22);
    context.fillStyle = "#000";
    context.fillText(text, x + 4, Math.max(y - 22, 0) + 20);
    if (scoresBox.checked) drawScores(context, face, x + w + 6, y);
  }
  context.restore();
  statusLine.textContent = `${state.fps.toFixed(1)} frames/s · latency ${Math.round(state.latencyMs)} ms · ` +
    `${state.faces.length} face${state.faces.length === 1 ? "" : "s"}`;
}

function drawScores(context, face, left, top) {
  context.font = "12px system-ui, sans-serif";
  state.classNames.forEach((name, row) => {
    const y = top + row * 16;
    context.fillStyle = state.colours[name];
    context.fillRect(left, y + 2, 80 * face.scores[name], 12);
    context.fillStyle = "#fff";
    context.fillText(`${name} ${Math.round(100 * face.scores[name])}%`, left + 84, y + 15);
  });
  context.font = "16px system-ui, sans-serif";
}

document.getElementById("snapshot").onclick = () => {
  // The frame as shown: the mirrored video with the overlay over it.
  const picture = document.createElement("canvas");
  picture.width = video.videoWidth;
  picture.height = video.videoHeight;
  const context = picture.getContext("2d");
  context.save();
  context.scale(-1, 1);
  context.drawImage(video, -picture.width, 0);
  context.restore();
  draw(context, true);
  picture.toBlob((blob) => {
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = `emotion-snapshot-${new Date().toISOString().replace(/[:.]/g, "-")}.png`;
    link.click();
    // Not at once: Firefox and Safari read the blob after click() returns, and a revoked one fails the download.
    setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
  }, "image/png");
};
scoresBox.onchange = () => draw();

start().catch((error) => {
  state.error = String(error.message || error);
  statusLine.textContent = "not running";
  say(`${state.error}${window.isSecureContext ? "" : " (a browser opens the camera only on https or localhost)"}`);
});
