// The yoloxdet page: send the image to /v1/detect, draw the answer's boxes, show the raw JSON.
// Plain JS, no build step, no external requests: everything comes from this service.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { file: null, image: null, classNames: [], pending: 0 };

function headers() {
  const key = $("api-key").value;
  return key ? { "X-API-Key": key } : {};
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function colour(classId) {
  return `hsl(${(classId * 47) % 360} 80% 45%)`;
}

async function loadInfo() {
  const response = await fetch("/v1/info", { headers: headers() });
  const body = await response.json();
  if (!response.ok) {
    setStatus(body.detail, true);
    return false;
  }
  state.classNames = body.class_names;
  $("model").textContent = `${body.model}, input ${body.input_size.join("×")}`;
  $("conf").value = body.defaults.conf;
  $("iou").value = body.defaults.iou;
  const select = $("classes");
  select.replaceChildren(...body.class_names.map((name, id) => new Option(`${id} ${name}`, String(id))));
  showSliders();
  return true;
}

function showSliders() {
  $("conf-value").textContent = Number($("conf").value).toFixed(2);
  $("iou-value").textContent = Number($("iou").value).toFixed(2);
}

function query() {
  const params = new URLSearchParams({ conf: $("conf").value, iou: $("iou").value });
  const classes = [...$("classes").selectedOptions].map((o) => o.value);
  if (classes.length) params.set("classes", classes.join(","));
  return params;
}

async function detect() {
  if (!state.file) return;
  if (!state.classNames.length && !(await loadInfo())) return;
  const ticket = ++state.pending;
  setStatus("detecting…");
  const form = new FormData();
  form.append("image", state.file);
  let response, body;
  try {
    response = await fetch(`/v1/detect?${query()}`, { method: "POST", body: form, headers: headers() });
    body = await response.json();
  } catch (error) {
    setStatus(`request failed: ${error}`, true);
    return;
  }
  if (ticket !== state.pending) return; // a newer request (slider moved) will draw
  $("json").textContent = JSON.stringify(body, null, 2);
  if (!response.ok) {
    setStatus(`${response.status}: ${body.detail}`, true);
    draw([]);
    return;
  }
  draw(body.detections);
  const { total_ms: ms, batch_size: batch } = body.timing;
  setStatus(`${body.detections.length} boxes in ${ms.toFixed(1)} ms (batch of ${batch})`);
}

function draw(detections) {
  const canvas = $("canvas");
  const context = canvas.getContext("2d");
  if (!state.image) return;
  canvas.width = state.image.naturalWidth;
  canvas.height = state.image.naturalHeight;
  context.drawImage(state.image, 0, 0);
  const line = Math.max(2, Math.round(Math.max(canvas.width, canvas.height) / 300));
  context.lineWidth = line;
  context.font = `${6 * line + 6}px system-ui, sans-serif`;
  context.textBaseline = "bottom";
  for (const det of detections) {
    const [x1, y1, x2, y2] = det.box_xyxy;
    const label = `${det.class_name} ${det.score.toFixed(2)}`;
    context.strokeStyle = context.fillStyle = colour(det.class_id);
    context.strokeRect(x1, y1, x2 - x1, y2 - y1);
    const width = context.measureText(label).width + 2 * line;
    const height = 6 * line + 10;
    const top = y1 - height < 0 ? y1 + height : y1;
    context.fillRect(x1, top - height, width, height);
    context.fillStyle = "#fff";
    context.fillText(label, x1 + line, top - 2);
  }
  canvas.dataset.drawn = String(detections.length); // read by the browser test
}

function useFile(file) {
  if (!file) return;
  state.file = file;
  const image = new Image();
  image.onload = () => {
    state.image = image;
    detect();
  };
  image.onerror = () => {
    state.image = null;
    detect(); // the service explains what is wrong with the file
  };
  image.src = URL.createObjectURL(file);
}

$("file").addEventListener("change", (event) => useFile(event.target.files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  useFile(event.dataTransfer.files[0]);
});
for (const id of ["conf", "iou"]) {
  $(id).addEventListener("input", showSliders);
  $(id).addEventListener("change", detect);
}
$("classes").addEventListener("change", detect);
$("api-key").addEventListener("change", () => { if (!state.classNames.length) loadInfo(); });
loadInfo().catch((error) => setStatus(`cannot reach the service: ${error}`, true));
