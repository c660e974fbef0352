// featuremaps explorer: one page, no framework, no network beyond this server.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { image: "sample:cat", layers: [], scene: null, step: 0, timer: null, layer: null, maps: null };

async function api(path, body, method) {
  const options = body instanceof FormData ? { method: "POST", body }
    : body !== undefined ? { method: method || "POST", headers: { "Content-Type": "application/json" },
                             body: JSON.stringify(body) } : {};
  const response = await fetch(path, options);
  const data = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new Error(data.error || data.detail || response.statusText);
  return data;
}

function debounce(fn, ms) {
  let handle = null;
  return (...args) => { clearTimeout(handle); handle = setTimeout(() => fn(...args), ms); };
}

function option(select, value, text) {
  const o = document.createElement("option");
  o.value = value; o.textContent = text || value; select.appendChild(o);
}

// --- image ------------------------------------------------------------------------
function setImage(id, label) {
  state.image = id;
  $("preview").src = `/api/images/${encodeURIComponent(id)}.png`;
  $("image-status").textContent = label || id;
  refreshConv(); refreshMaps(); predict();
}

async function upload(file) {
  if (!file) return;
  $("image-status").textContent = `uploading ${file.name}…`;
  const form = new FormData();
  form.append("file", file);
  try {
    const result = await api("/api/images", form);
    setImage(result.id, `${file.name} (${result.width}×${result.height})`);
  } catch (error) {
    $("image-status").textContent = `cannot use ${file.name}: ${error.message}`;
  }
}

// --- convolution playground ---------------------------------------------------------
function convSettings() {
  const padding = $("conv-padding").value.trim();
  const filters = $("conv-filters").value;
  return {
    image: state.image, filters, depth: Number($("conv-depth").value),
    kernel_size: Number($("conv-kernel").value), stride: Number($("conv-stride").value),
    padding: /^\d+$/.test(padding) ? Number(padding) : padding,
    padding_mode: $("conv-mode").value, dilation: Number($("conv-dilation").value),
    transposed: $("conv-transposed").checked, output_padding: Number($("conv-output-padding").value),
  };
}

const refreshConv = debounce(async () => {
  const settings = convSettings();
  try {
    const result = await api("/api/conv", settings);
    const [d, h, w] = result.output_shape;
    $("output-shape").textContent = `${d} × ${h} × ${w}`;
    $("formula").textContent = result.formula.join("\n");
    $("conv-error").textContent = "";
    const tiles = $("conv-maps");
    tiles.replaceChildren(...result.maps.map((m) => tile(m.png, `#${m.index} ${m.name}`, `${m.min.toFixed(2)}..${m.max.toFixed(2)}`)));
  } catch (error) {
    $("conv-error").textContent = error.message;
  }
  loadScene(settings);
}, 150);

function tile(src, title, note) {
  const div = document.createElement("div");
  div.className = "tile"; div.dataset.testid = "feature-map";
  div.setAttribute("data-testid", "feature-map");
  const img = document.createElement("img"); img.src = src; img.alt = title;
  const caption = document.createElement("div"); caption.textContent = title;
  const small = document.createElement("div"); small.textContent = note || "";
  div.append(img, caption, small);
  return div;
}

// --- the step-by-step scene ---------------------------------------------------------
async function loadScene(settings) {
  const padding = typeof settings.padding === "number" ? Math.min(settings.padding, 3) : 1;
  try {
    state.scene = await api("/api/scene", {
      height: 7, width: 7, channels: 1, depth: Math.min(settings.depth || 2, 4),
      kernel_size: Math.min(settings.kernel_size, 5), stride: Math.min(settings.stride, 4), padding,
      padding_mode: settings.padding_mode, dilation: Math.min(settings.dilation, 3),
      transposed: settings.transposed, output_padding: Math.min(settings.output_padding, 3),
    });
    state.step = 0;
    drawScene();
  } catch (error) {
    $("scene-status").textContent = `no step-by-step view for these settings: ${error.message}`;
    state.scene = null;
    const canvas = $("scene"); canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
  }
}

function drawGrid(ctx, values, left, top, cell, colour) {
  values.forEach((row, r) => row.forEach((value, c) => {
    const x = left + c * cell, y = top + r * cell;
    ctx.fillStyle = colour ? colour(r, c) : "#fff";
    ctx.fillRect(x, y, cell, cell);
    ctx.strokeStyle = "#bbb"; ctx.strokeRect(x, y, cell, cell);
    if (value !== null) {
      ctx.fillStyle = "#222";
      ctx.fillText(Number.isInteger(value) ? String(value) : value.toFixed(1), x + cell / 2, y + cell / 2);
    }
  }));
}

function drawScene() {
  const scene = state.scene, canvas = $("scene"), ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!scene) return;
  ctx.font = "12px sans-serif"; ctx.textAlign = "center"; ctx.textBaseline = "middle";
  const step = scene.steps[state.step], padded = scene.padded.values[0], isPad = scene.padded.is_padding;
  const inserted = scene.padded.is_inserted;
  const cell = Math.min(28, Math.floor(320 / padded.length));
  drawGrid(ctx, padded, 10, 30, cell, (r, c) => inserted[r][c] ? "#fceec4" : isPad[r][c] ? "#e8e8e8" : "#fff");
  ctx.fillStyle = "rgba(255,150,0,0.35)";
  step.padded_rows.forEach((r) => step.padded_cols.forEach((c) => ctx.fillRect(10 + c * cell, 30 + r * cell, cell, cell)));
  ctx.strokeStyle = "#e6007a"; ctx.lineWidth = 3;
  const rows = step.padded_rows, cols = step.padded_cols;
  ctx.strokeRect(10 + cols[0] * cell, 30 + rows[0] * cell, (cols[cols.length - 1] - cols[0] + 1) * cell,
                 (rows[rows.length - 1] - rows[0] + 1) * cell);
  ctx.lineWidth = 1; ctx.textAlign = "left"; ctx.fillStyle = "#222";
  ctx.fillText(`input ${scene.input.shape.join("×")}, padded ${scene.padded.shape.slice(1).join("×")}`, 10, 14);
  const out = scene.output.values, [depth, oh, ow] = scene.output.shape;
  const left = 30 + padded[0].length * cell;
  const ocell = Math.max(14, Math.min(28, Math.floor((canvas.width - left - 10) / Math.max(depth * (ow + 1), 1))));
  ctx.fillText(`${depth} maps ${depth}×${oh}×${ow}`, left, 14);
  ctx.textAlign = "center";
  for (let d = 0; d < depth; d++) {
    const mapLeft = left + d * (ow * ocell + 14);
    const values = out[d].map((row, y) => row.map((v, x) => ((d * oh + y) * ow + x) <= state.step ? v : null));
    drawGrid(ctx, values, mapLeft, 30, ocell, (y, x) => (d === step.filter && y === step.y && x === step.x) ? "#ffdcb4"
      : ((d * oh + y) * ow + x) <= state.step ? "#d6e8fa" : "#fff");
  }
  ctx.textAlign = "left";
  const sums = step.channel_sums.map((s) => s.toFixed(0)).join(" + ");
  ctx.fillText(`map ${step.filter} (y=${step.y}, x=${step.x}) = ${sums} + bias ${step.bias} = ${step.total}`, 10,
               50 + padded.length * cell);
  $("scene-status").textContent = `step ${state.step + 1} of ${scene.steps.length}`;
}

function stepScene() {
  if (!state.scene) return;
  state.step = (state.step + 1) % state.scene.steps.length;
  drawScene();
}

// --- model explorer ---------------------------------------------------------------------
async function loadLayers() {
  const model = $("model-select").value;
  $("layer-select").replaceChildren();
  $("model-error").textContent = "";
  try {
    state.layers = await api(`/api/models/${encodeURIComponent(model)}/layers`);
  } catch (error) {
    $("model-error").textContent = error.message; return;
  }
  state.layers.forEach((l) => {
    const field = l.global ? "whole image" : l.receptive_field ? `RF ${l.receptive_field[0]}` : "RF ?";
    const stride = l.stride ? `stride ${l.stride[0]}` : "";
    option($("layer-select"), l.name, `${"  ".repeat(l.depth)}${l.name} — ${l.output_shape.join("×")}, ${stride}, ${field}`);
  });
  const preferred = state.layers.find((l) => l.depth === 0 && l.stride && l.stride[0] >= 4) || state.layers[0];
  if (preferred) $("layer-select").value = preferred.name;
  refreshMaps();
}

const refreshMaps = debounce(async () => {
  const model = $("model-select").value, layer = $("layer-select").value;
  if (!model || !layer) return;
  $("layer-info").textContent = `computing ${layer}…`;
  try {
    const result = await api("/api/maps", { image: state.image, model, layer, max_maps: 32 });
    state.maps = result; state.layer = result.layer;
    const l = result.layer;
    $("layer-info").textContent = `${result.weights} · ${l.name} (${l.type}): ${l.output_shape.join("×")} maps, stride ${l.stride ? l.stride[0] : "-"}, `
      + `receptive field ${l.receptive_field ? l.receptive_field[0] : "-"} px; showing the ${result.maps.length} most active of ${result.channels}`;
    $("model-maps").replaceChildren(...result.maps.map((m) => {
      const t = tile(m.png, `#${m.channel}`, `max ${m.max.toFixed(2)}`);
      t.addEventListener("click", () => focusMap(m.channel, t));
      return t;
    }));
    $("focus").hidden = true;
  } catch (error) {
    $("model-error").textContent = error.message; $("layer-info").textContent = "";
  }
}, 150);

async function focusMap(channel, element) {
  document.querySelectorAll("#model-maps .tile").forEach((t) => t.classList.remove("selected"));
  element.classList.add("selected");
  const model = $("model-select").value, layer = state.layer.name;
  const result = await api("/api/overlay", { image: state.image, model, layer, channel });
  $("focus-map").src = result.map;
  $("focus-input").src = state.maps.input;
  $("focus-overlay").src = result.png;
  state.focus = { size: result.map_size };
  $("focus").hidden = false;
  $("lineage-rows").replaceChildren();
  loadLineage(model, layer, channel, 0);
  state.focusChannel = { model, layer, channel };
  $("detect").hidden = false;
  $("detect-image").removeAttribute("src");
  $("detect-patches").replaceChildren();
  $("detect-status").textContent = `${layer} #${channel}: press the button to optimise an image for it (a few seconds)`;
}

// --- what a channel detects: feature visualisation + top dataset patches -----------------
async function loadDetect() {
  if (!state.focusChannel) return;
  const { model, layer, channel } = state.focusChannel;
  const asked = `${model}/${layer}/${channel}`;
  state.detect = asked;
  $("detect").hidden = false;
  $("detect-image").removeAttribute("src");
  $("detect-patches").replaceChildren();
  $("detect-status").textContent = `optimising an image for ${layer} #${channel}…`;
  try {
    const result = await api("/api/visualize", { model, layer, channel });
    if (state.detect !== asked) return;  // another map was clicked meanwhile
    $("detect-image").src = result.image;
    $("detect-image").alt = `optimised for ${result.label}`;
    for (const patch of result.patches) {
      const img = document.createElement("img"); img.src = patch; img.alt = "top dataset patch";
      img.className = "patch"; $("detect-patches").appendChild(img);
    }
    const link = result.microscope ? " · " : "";
    $("detect-status").textContent = `${result.label}: mean ${result.start.toFixed(2)} → ${result.value.toFixed(2)} ` +
      `(${result.weights})` + (result.patches.length ? "" : "; no store for this model: no dataset patches") + link;
    if (result.microscope) {
      const a = document.createElement("a"); a.href = result.microscope; a.textContent = "open in the microscope";
      $("detect-status").appendChild(a);
    }
  } catch (error) {
    if (state.detect === asked) $("detect-status").textContent = `no visualisation: ${error.message}`;
  }
}

// --- lineage: the maps below that a map is built from ---------------------------------
async function loadLineage(model, layer, channel, depth) {
  const rows = $("lineage-rows");
  while (rows.children.length > depth) rows.lastChild.remove();
  $("lineage").hidden = false;
  $("lineage-status").textContent = `tracing ${layer} #${channel}…`;
  try {
    const result = await api("/api/lineage", { image: state.image, model, layer, channel, levels: 1, top: 6 });
    const root = result.nodes[0];
    const row = document.createElement("div");
    row.className = "lineage-row"; row.setAttribute("data-testid", "lineage-row");
    const head = document.createElement("p");
    const notes = [];
    if (result.skip !== null) notes.push(`${result.skip.toFixed(3)} through the skip, ${result.branch.toFixed(3)} through the branch`);
    if (result.bias !== null) notes.push(`biases ${result.bias.toFixed(3)}`);
    head.textContent = `${root.layer} #${root.channel} = ${root.value.toFixed(3)} (its mean) is built from`
      + (notes.length ? ` (${notes.join("; ")})` : "") + ":";
    const cards = document.createElement("div"); cards.className = "tiles";
    result.nodes.slice(1).forEach((node) => {
      const card = document.createElement("div");
      card.className = "tile lineage-card"; card.setAttribute("data-testid", "lineage-card");
      const map = document.createElement("img"); map.src = node.map; map.alt = `${node.layer} #${node.channel}`;
      const crop = document.createElement("img"); crop.src = node.crop; crop.alt = "what its strongest unit sees";
      const caption = document.createElement("div"); caption.textContent = `${node.layer} #${node.channel}`;
      const share = document.createElement("div");
      share.className = node.share >= 0 ? "adds" : "takes";
      share.textContent = `${node.share >= 0 ? "+" : ""}${(100 * node.share).toFixed(1)}%`;
      card.append(map, crop, caption, share);
      if (node.layer !== "input") {
        card.addEventListener("click", () => {
          row.querySelectorAll(".lineage-card").forEach((c) => c.classList.remove("selected"));
          card.classList.add("selected");
          loadLineage(model, node.layer, node.channel, depth + 1);
        });
      }
      cards.appendChild(card);
    });
    row.append(head, cards);
    rows.appendChild(row);
    $("lineage-status").textContent = `${result.model}, ${result.weights}; ${result.exact ? "exact" : "approximate: " + result.method}`;
  } catch (error) {
    $("lineage-status").textContent = `no lineage: ${error.message}`;
  }
}

function showField(event) {
  const layer = state.layer, focus = state.focus;
  if (!layer || !focus || !layer.stride || !layer.receptive_field) return;
  const box = event.target.getBoundingClientRect();
  const y = Math.floor((event.clientY - box.top) / box.height * focus.size[0]);
  const x = Math.floor((event.clientX - box.left) / box.width * focus.size[1]);
  const image = $("focus-input"), canvas = $("focus-box");
  canvas.width = image.clientWidth; canvas.height = image.clientHeight;
  const [ih, iw] = state.maps.input_size, sy = canvas.height / ih, sx = canvas.width / iw;
  const top = layer.start[0] + y * layer.stride[0], left = layer.start[1] + x * layer.stride[1];
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.strokeStyle = "#e6007a"; ctx.lineWidth = 3;
  ctx.strokeRect(left * sx, top * sy, layer.receptive_field[1] * sx, layer.receptive_field[0] * sy);
  ctx.fillStyle = "#e6007a"; ctx.font = "13px sans-serif";
  ctx.fillText(`unit (${y}, ${x}): ${layer.receptive_field[0]}×${layer.receptive_field[1]} px`, 4, canvas.height - 6);
}

// --- recognition and segmentation ----------------------------------------------------
async function predict() {
  try {
    const result = await api("/api/predict", { image: state.image, top_k: 3 });
    $("prediction").replaceChildren(...result.predictions.map((p) => {
      const li = document.createElement("li");
      li.textContent = `${p.label} — ${(100 * p.probability).toFixed(1)}%`;
      return li;
    }));
    $("cam").src = result.cam;
    $("classes").textContent = `${result.model} (${result.weights}) knows only: ${result.classes.join(", ")}. `
      + "The map shows where its last convolution stage saw the top class (Grad-CAM).";
    $("familiarity").textContent = result.familiar === false ? `⚠ ${result.note}` : "";
  } catch (error) {
    $("prediction").textContent = error.message;
  }
}

async function segment() {
  const box = $("segmentation-result");
  box.textContent = "segmenting…";
  try {
    const result = await api("/api/segment", { image: state.image, method: $("seg-method").value,
                                               clusters: Number($("seg-k").value) });
    const img = document.createElement("img"); img.src = result.png; img.alt = "segmentation";
    const list = document.createElement("p");
    list.textContent = result.segments.map((s) => `${s.name}: ${s.pixels} px`).join(" · ");
    box.replaceChildren(img, list);
  } catch (error) {
    box.textContent = error.message;
  }
}

// --- start ---------------------------------------------------------------------------
async function start() {
  const config = await api("/api/config");
  config.samples.forEach((name) => option($("sample-select"), `sample:${name}`, name));
  config.banks.forEach((name) => option($("conv-filters"), name));
  $("conv-filters").value = "random";
  config.choices.forEach((name) => option($("model-select"), name));
  if (config.default) $("model-select").value = config.default;
  $("microscope").hidden = !config.store;
  $("sample-select").addEventListener("change", (e) => setImage(e.target.value));
  $("upload").addEventListener("change", (e) => upload(e.target.files[0]));
  const drop = $("drop");
  ["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.add("over"); }));
  ["dragleave", "drop"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.remove("over"); }));
  drop.addEventListener("drop", (e) => upload(e.dataTransfer.files[0]));
  ["conv-filters", "conv-depth", "conv-kernel", "conv-stride", "conv-padding", "conv-mode", "conv-dilation",
   "conv-transposed", "conv-output-padding"].forEach(
    (id) => $(id).addEventListener("input", refreshConv));
  $("scene-step").addEventListener("click", stepScene);
  $("scene-play").addEventListener("click", () => {
    if (state.timer) { clearInterval(state.timer); state.timer = null; $("scene-play").textContent = "Play"; return; }
    state.timer = setInterval(stepScene, 400); $("scene-play").textContent = "Pause";
  });
  $("model-select").addEventListener("change", loadLayers);
  $("layer-select").addEventListener("change", refreshMaps);
  $("focus-map").addEventListener("mousemove", showField);
  $("predict").addEventListener("click", predict);
  $("segment").addEventListener("click", segment);
  $("detect-run").addEventListener("click", loadDetect);
  setImage("sample:cat");
  loadLayers();
}

start().catch((error) => { document.body.prepend(`explorer failed to start: ${error.message}`); });
