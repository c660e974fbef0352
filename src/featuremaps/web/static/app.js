// featuremaps explorer: one page, no framework, no network beyond this server.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { image: "sample:cat", layers: [], scene: null, layer: null, maps: null, timer: null,
                player: { d: 0, y: 0, x: 0, page: 0, drag: null } };
const PER_PAGE = 4;  // filters shown at a time in the player

// --- requests: a busy indicator, and a newer request of the same kind cancels the older one --------
const pending = new Map();
let busyCount = 0;
function setBusy(delta, what) {
  busyCount = Math.max(0, busyCount + delta);
  $("busy").hidden = busyCount === 0;
  if (what && delta > 0) $("busy-text").textContent = `${what}…`;
}

async function api(path, body, options = {}) {
  const key = options.key;
  if (key && pending.has(key)) pending.get(key).abort();  // stale: its answer would be overwritten anyway
  const controller = new AbortController();
  if (key) pending.set(key, controller);
  const init = body instanceof FormData ? { method: "POST", body }
    : body !== undefined ? { method: options.method || "POST", headers: { "Content-Type": "application/json" },
                             body: JSON.stringify(body) } : {};
  init.signal = controller.signal;
  const section = options.section ? $(options.section) : null;
  setBusy(1, options.what || "working");
  if (section) section.setAttribute("aria-busy", "true");
  try {
    const response = await fetch(path, init);
    const data = await response.json().catch(() => ({ error: response.statusText }));
    if (!response.ok) throw new Error(data.error || data.detail || response.statusText);
    return data;
  } finally {
    setBusy(-1);
    if (key && pending.get(key) === controller) pending.delete(key);
    if (section && ![...pending.values()].length) section.removeAttribute("aria-busy");
  }
}
const cancelled = (error) => error && error.name === "AbortError";

function debounce(fn, ms) {
  let handle = null;
  return (...args) => { clearTimeout(handle); handle = setTimeout(() => fn(...args), ms); };
}

function option(select, value, text) {
  const o = document.createElement("option");
  o.value = value; o.textContent = text || value; select.appendChild(o);
  return o;
}

const fixed = (v, digits = 2) => Number.isInteger(v) ? String(v) : v.toFixed(digits);
// short cell text, as the pictures print it: integers as they are, else 2 decimals without the leading zero
const cellText = (v) => Number.isInteger(v) ? String(v) : Math.abs(v) >= 100 ? v.toFixed(0)
  : v.toFixed(2).replace(/^(-?)0\./, "$1.");

// --- image ------------------------------------------------------------------------
function setImage(id, label) {
  state.image = id;
  $("preview").src = `/api/images/${encodeURIComponent(id)}.png`;
  $("image-status").textContent = label || id;
  $("sample-select").value = id;
  refreshConv(); refreshMaps(); predict();
}

async function upload(file) {
  if (!file) return;
  $("image-status").textContent = `uploading ${file.name}…`;
  const form = new FormData();
  form.append("file", file);
  try {
    const result = await api("/api/images", form, { what: `reading ${file.name}` });
    const label = `${file.name} (${result.width}×${result.height})`;
    option($("sample-select"), result.id, `upload: ${label}`);  // the list shows what is on screen
    setImage(result.id, label);
  } catch (error) {
    $("image-status").textContent = `cannot use ${file.name}: ${error.message}`;
  }
}

// --- convolution playground ---------------------------------------------------------
function convSettings() {
  const padding = $("conv-padding").value.trim().toLowerCase();
  return {
    image: state.image, filters: $("conv-filters").value, depth: Number($("conv-depth").value),
    kernel_size: Number($("conv-kernel").value), stride: Number($("conv-stride").value),
    padding: /^\d+$/.test(padding) ? Number(padding) : padding,
    padding_mode: $("conv-mode").value, dilation: Number($("conv-dilation").value),
    transposed: $("conv-transposed").checked, output_padding: Number($("conv-output-padding").value),
  };
}

function tile(src, title, note) {
  const div = document.createElement("div");
  div.className = "tile"; div.setAttribute("data-testid", "feature-map");
  const img = document.createElement("img"); img.src = src; img.alt = title;
  const caption = document.createElement("div"); caption.textContent = title;
  const small = document.createElement("div"); small.className = "range"; small.textContent = note || "";
  div.append(img, caption, small);
  return div;
}

// Settings that do not apply are shown as such, never left to block: a fixed bank's own depth and size,
// output padding only for a transposed layer.
function applicableSettings() {
  const bank = $("conv-filters").value, fixed = (state.bankDepths || {})[bank];
  const depth = $("conv-depth"), kernel = $("conv-kernel"), padding = $("conv-output-padding");
  depth.disabled = fixed !== null && fixed !== undefined;
  if (depth.disabled) depth.value = fixed;
  depth.title = depth.disabled ? `${bank} has ${fixed} filter${fixed === 1 ? "" : "s"} of its own` : "";
  kernel.disabled = !(state.sizeableBanks || []).includes(bank);
  if (kernel.disabled) kernel.value = 3;
  kernel.title = kernel.disabled ? `${bank} is 3×3` : "";
  padding.disabled = !$("conv-transposed").checked;
  if (padding.disabled) padding.value = 0;
  padding.title = padding.disabled ? "only a transposed layer has output padding" : "";
}

function clearConv(message) {  // an error leaves nothing stale on screen
  $("conv-error").textContent = message;
  $("output-shape").textContent = "—";
  $("formula").textContent = "";
  $("shrink").textContent = "";
  $("conv-maps").replaceChildren();
}

const refreshConv = debounce(async () => {
  applicableSettings();
  const settings = convSettings();
  try {
    const result = await api("/api/conv", settings, { key: "conv", section: "conv", what: "computing the maps" });
    const [d, h, w] = result.output_shape;
    $("output-shape").textContent = `${d} × ${h} × ${w}`;
    $("formula").textContent = result.formula.join("\n");
    $("shrink").textContent = result.shrink ? `Shown and ${result.shrink}.` : "";
    $("conv-error").textContent = "";
    $("conv-maps").replaceChildren(...result.maps.map((m) =>
      tile(m.png, `#${m.index} ${m.name}`, `${m.min.toFixed(2)} to ${m.max.toFixed(2)}`)));
  } catch (error) {
    if (cancelled(error)) return;
    clearConv(error.message);
  }
  loadScene(settings);
}, 60);

// --- the step-by-step player ---------------------------------------------------------
// The page computes every value itself from the scene's padded input and weights (the tests check that it
// equals /api/scene's steps), so dragging the window needs no request.
async function loadScene(settings) {
  const kind = $("player-kind").value;
  const request = {
    filters: settings.filters, depth: Math.min(settings.depth || 2, 16), kernel_size: Math.min(settings.kernel_size, 5),
    stride: Math.min(settings.stride, 4), padding: typeof settings.padding === "number" ? Math.min(settings.padding, 3) : 1,
    padding_mode: settings.padding_mode, dilation: Math.min(settings.dilation, 3), transposed: settings.transposed,
    output_padding: Math.min(settings.output_padding, 3), include_steps: false,
    ...(kind === "image" ? { image: state.image, height: 6, width: 8 } : { height: 7, width: 7, channels: 1 }),
  };
  try {
    state.scene = await api("/api/scene", request, { key: "scene", what: "preparing the player" });
    state.sceneRequest = request;
    const p = state.player;
    p.d = Math.min(p.d, state.scene.output.shape[0] - 1);
    p.y = Math.min(p.y, state.scene.output.shape[1] - 1);
    p.x = Math.min(p.x, state.scene.output.shape[2] - 1);
    p.page = Math.floor(p.d / PER_PAGE);
    $("scene-status").textContent = "";
    drawPlayer();
  } catch (error) {
    if (cancelled(error)) return;
    state.scene = null;
    $("scene-status").textContent = `no step-by-step view for these settings: ${error.message}`;
    ["player-inputs", "player-filters", "player-products", "player-maps"].forEach((id) => $(id).replaceChildren());
    $("player-equation").textContent = "";
  }
}

function computeStep(scene, d, y, x) {
  const L = scene.layer, [sy, sx] = L.window_stride, [dy, dx] = L.dilation, [kh, kw] = L.kernel_size;
  const perGroup = L.in_channels / L.groups, group = Math.floor(d / (L.depth / L.groups));
  const channels = Array.from({ length: perGroup }, (_, k) => group * perGroup + k);
  const rows = Array.from({ length: kh }, (_, i) => y * sy + i * dy);
  const cols = Array.from({ length: kw }, (_, j) => x * sx + j * dx);
  const products = channels.map((ch, c) => rows.map((r, i) => cols.map((col, j) =>
    scene.padded.values[ch][r][col] * L.weights[d][c][i][j])));
  const sums = products.map((grid) => grid.flat().reduce((a, b) => a + b, 0));
  const bias = L.bias ? L.bias[d] : 0;
  return { d, y, x, channels, rows, cols, products, sums, bias, total: sums.reduce((a, b) => a + b, 0) + bias };
}

function equationText(step) {
  // as many decimals as it takes for the printed numbers to add up to the printed total
  const terms = [...step.sums, step.bias];
  let digits = 2;
  for (; digits < 6; digits++) {
    const shown = terms.map((t) => Number(t.toFixed(digits))).reduce((a, b) => a + b, 0);
    if (Math.abs(shown - Number(step.total.toFixed(digits))) < 0.5 * 10 ** -digits) break;
  }
  const f = (v) => Number.isInteger(v) ? String(v) : v.toFixed(digits);
  return `map ${step.d} at (y=${step.y}, x=${step.x}) = ${step.sums.map(f).join(" + ")} + bias ${f(step.bias)} = `
    + f(step.total);
}

function cellTable(values, className, cell) {
  const table = document.createElement("table");
  table.className = `cells ${className || ""}`;
  values.forEach((row, r) => {
    const tr = table.insertRow();
    row.forEach((value, c) => { const td = tr.insertCell(); td.dataset.r = r; td.dataset.c = c; cell(td, value, r, c); });
  });
  return table;
}

function viridis(t) {
  const stops = [[68, 1, 84], [65, 68, 135], [42, 120, 142], [34, 168, 132], [122, 209, 81], [253, 231, 37]];
  const s = Math.max(0, Math.min(1, t)) * (stops.length - 1), k = Math.min(Math.floor(s), stops.length - 2), f = s - k;
  const [a, b] = [stops[k], stops[k + 1]];
  return `rgb(${a.map((v, i) => Math.round(v + (b[i] - v) * f)).join(",")})`;
}

function drawPlayer() {
  const scene = state.scene, p = state.player;
  if (!scene) return;
  const L = scene.layer, [depth, oh, ow] = scene.output.shape, image = scene.kind === "image";
  const step = computeStep(scene, p.d, p.y, p.x);
  const inWindow = new Set(step.rows.flatMap((r) => step.cols.map((c) => `${r},${c}`)));
  const names = image ? ["R", "G", "B"] : null;
  const [C, H, W] = scene.input.shape, [, ph, pw] = scene.padded.shape;
  $("player-input-title").textContent = `Input ${C}×${H}×${W}` + (L.transposed ? ", zeros inserted" : "")
    + (ph !== H || pw !== W ? ` and padded to ${ph}×${pw}` : " (no padding)");
  $("player-inputs").replaceChildren(...scene.padded.values.map((channel, ch) => {
    const box = document.createElement("div");
    const caption = document.createElement("div"); caption.className = "grid-caption";
    caption.textContent = `channel ${ch}${names ? ` (${names[ch]})` : ""}${step.channels.includes(ch) ? "" : " (not read by this filter)"}`;
    const table = cellTable(channel, "input", (td, v, r, c) => {
      const pad = scene.padded.is_padding[r][c], inserted = scene.padded.is_inserted[r][c];
      td.textContent = cellText(v);
      if (inserted) td.classList.add("inserted"); else if (pad) td.classList.add("pad");
      else if (image) { const g = Math.round(255 * v); td.style.background = `rgb(${g},${g},${g})`;
                        td.style.color = v > 0.55 ? "#111" : "#fff"; }
      if (step.channels.includes(ch) && inWindow.has(`${r},${c}`)) td.classList.add("win");
    });
    table.setAttribute("data-testid", `player-input-${ch}`);
    table.addEventListener("pointerdown", (e) => startDrag(e, table));
    box.append(caption, table);
    return box;
  }));
  // filters, a page at a time
  const pages = Math.ceil(depth / PER_PAGE);
  p.page = Math.min(p.page, pages - 1);
  const first = p.page * PER_PAGE, last = Math.min(depth, first + PER_PAGE);
  $("filters-page").textContent = `${first + 1}–${last} of ${depth}`;
  $("filters-prev").disabled = p.page === 0; $("filters-next").disabled = p.page >= pages - 1;
  const filterCards = [];
  for (let d = first; d < last; d++) {
    const card = document.createElement("div");
    card.className = `filter-card${d === p.d ? " active" : ""}`; card.setAttribute("data-testid", `player-filter-${d}`);
    const caption = document.createElement("div"); caption.className = "grid-caption";
    caption.textContent = `filter ${d}: ${L.filters[d]}, bias ${fixed(L.bias ? L.bias[d] : 0, 3)}`;
    const kernels = document.createElement("div"); kernels.className = "kernels";
    L.weights[d].forEach((kernel) => kernels.appendChild(cellTable(kernel, "small", (td, v) => { td.textContent = cellText(v); })));
    card.append(caption, kernels);
    card.addEventListener("click", () => { p.d = d; drawPlayer(); });
    filterCards.push(card);
  }
  $("player-filters").replaceChildren(...filterCards);
  // the products of the current window and their sums
  $("player-products").replaceChildren(...step.products.map((grid, c) => {
    const box = document.createElement("div");
    const caption = document.createElement("div"); caption.className = "grid-caption";
    caption.textContent = `channel ${step.channels[c]}: window × filter ${p.d}`;
    const table = cellTable(grid, "small products", (td, v) => { td.textContent = cellText(v); td.dataset.value = v; });
    table.setAttribute("data-testid", `player-products-${c}`);
    const sum = document.createElement("div"); sum.className = "sum"; sum.setAttribute("data-testid", `player-sum-${c}`);
    sum.dataset.value = step.sums[c];
    sum.textContent = `sum = ${fixed(step.sums[c], 3)}`;
    box.append(caption, table, sum);
    return box;
  }));
  const eq = $("player-equation");
  eq.textContent = equationText(step); eq.dataset.total = step.total; eq.dataset.d = p.d; eq.dataset.y = p.y;
  eq.dataset.x = p.x;
  // the maps of the filters on this page, the current cell outlined
  $("player-maps-title").textContent = `Maps ${depth}×${oh}×${ow} (filters ${first + 1}–${last})`;
  $("player-maps").replaceChildren(...Array.from({ length: last - first }, (_, k) => {
    const d = first + k, values = Array.from({ length: oh }, (_, y) => Array.from({ length: ow }, (_, x) =>
      computeStep(scene, d, y, x).total));
    const flat = values.flat(), low = Math.min(...flat), high = Math.max(...flat);
    const box = document.createElement("div");
    const caption = document.createElement("div"); caption.className = "grid-caption";
    caption.textContent = `map ${d}: ${fixed(low)} to ${fixed(high)}`;
    const table = cellTable(values, "small", (td, v, y, x) => {
      td.textContent = cellText(v); td.dataset.value = v; td.classList.add("out");
      const t = high > low ? (v - low) / (high - low) : 0.5;
      td.style.background = viridis(t); td.style.color = t > 0.6 ? "#111" : "#fff";
      if (d === p.d && y === p.y && x === p.x) td.classList.add("current");
      td.addEventListener("click", () => { Object.assign(p, { d, y, x }); drawPlayer(); });
    });
    table.setAttribute("data-testid", `player-map-${d}`);
    box.append(caption, table);
    return box;
  }));
  $("scene-status").textContent = `step ${(p.d * oh + p.y) * ow + p.x + 1} of ${depth * oh * ow}`;
}

function startDrag(event, table) {
  const td = event.target.closest("td");
  if (!td || !td.classList.contains("win")) return;
  const scene = state.scene, step = computeStep(scene, state.player.d, state.player.y, state.player.x);
  state.player.drag = { dr: Number(td.dataset.r) - step.rows[0], dc: Number(td.dataset.c) - step.cols[0] };
  table.classList.add("dragging");
  event.preventDefault();
}

function moveDrag(event) {
  const p = state.player;
  if (!p.drag || !state.scene) return;
  const td = document.elementFromPoint(event.clientX, event.clientY)?.closest("table.input td");
  if (!td) return;
  const [sy, sx] = state.scene.layer.window_stride, [, oh, ow] = state.scene.output.shape;
  const y = Math.max(0, Math.min(oh - 1, Math.round((Number(td.dataset.r) - p.drag.dr) / sy)));
  const x = Math.max(0, Math.min(ow - 1, Math.round((Number(td.dataset.c) - p.drag.dc) / sx)));
  if (y !== p.y || x !== p.x) { p.y = y; p.x = x; drawPlayer(); }
}

function endDrag() {
  if (!state.player.drag) return;
  state.player.drag = null;
  document.querySelectorAll("table.dragging").forEach((t) => t.classList.remove("dragging"));
}

function stepScene(delta) {
  if (!state.scene) return;
  const [depth, oh, ow] = state.scene.output.shape, p = state.player, total = depth * oh * ow;
  const k = (((p.d * oh + p.y) * ow + p.x + delta) % total + total) % total;
  p.d = Math.floor(k / (oh * ow)); p.y = Math.floor((k % (oh * ow)) / ow); p.x = k % ow;
  p.page = Math.floor(p.d / PER_PAGE);
  drawPlayer();
}

// --- model explorer ---------------------------------------------------------------------
async function loadLayers() {
  const model = $("model-select").value;
  $("layer-select").replaceChildren();
  $("model-error").textContent = "";
  try {
    state.layers = await api(`/api/models/${encodeURIComponent(model)}/layers`, undefined,
                             { key: "layers", what: `listing the layers of ${model}` });
  } catch (error) {
    if (!cancelled(error)) $("model-error").textContent = error.message;
    return;
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
    const result = await api("/api/maps", { image: state.image, model, layer, max_maps: 32 },
                             { key: "maps", section: "model", what: `computing ${layer}` });
    state.maps = result; state.layer = result.layer;
    const l = result.layer;
    $("layer-info").textContent = `${result.weights} · ${l.name} (${l.type}): ${l.output_shape.join("×")} maps, stride ${l.stride ? l.stride[0] : "-"}, `
      + `receptive field ${l.receptive_field ? l.receptive_field[0] : "-"} px; showing the ${result.maps.length} most active of ${result.channels}`;
    $("model-maps").replaceChildren(...result.maps.map((m) => {
      const t = tile(m.png, `#${m.channel}`, `${m.min.toFixed(2)} to ${m.max.toFixed(2)}`);
      t.addEventListener("click", () => focusMap(m.channel, t));
      return t;
    }));
    $("focus").hidden = true;
  } catch (error) {
    if (cancelled(error)) return;
    $("model-error").textContent = error.message; $("layer-info").textContent = "";
  }
}, 60);

async function focusMap(channel, element) {
  document.querySelectorAll("#model-maps .tile").forEach((t) => t.classList.remove("selected"));
  element.classList.add("selected");
  const model = $("model-select").value, layer = state.layer.name;
  let result;
  try {
    result = await api("/api/overlay", { image: state.image, model, layer, channel },
                       { key: "overlay", what: `drawing ${layer} #${channel}` });
  } catch (error) {
    if (!cancelled(error)) $("model-error").textContent = error.message;
    return;
  }
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
  $("detect-image").hidden = true;  // no empty (broken) image box before there is an image
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
  $("detect-image").hidden = true;  // no empty (broken) image box before there is an image
  $("detect-patches").replaceChildren();
  $("detect-status").textContent = `optimising an image for ${layer} #${channel}…`;
  try {
    const result = await api("/api/visualize", { model, layer, channel },
                             { key: "visualize", what: `optimising an image for ${layer} #${channel}` });
    if (state.detect !== asked) return;  // another map was clicked meanwhile
    $("detect-image").src = result.image;
    $("detect-image").hidden = false;
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
    if (state.detect === asked && !cancelled(error)) $("detect-status").textContent = `no visualisation: ${error.message}`;
  }
}

// --- lineage: the maps below that a map is built from ---------------------------------
async function loadLineage(model, layer, channel, depth) {
  const rows = $("lineage-rows");
  while (rows.children.length > depth) rows.lastChild.remove();
  $("lineage").hidden = false;
  $("lineage-status").textContent = `tracing ${layer} #${channel}…`;
  try {
    const result = await api("/api/lineage", { image: state.image, model, layer, channel, levels: 1, top: 6 },
                             { key: `lineage-${depth}`, what: `tracing ${layer} #${channel}` });
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
    if (!cancelled(error)) $("lineage-status").textContent = `no lineage: ${error.message}`;
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
    const result = await api("/api/predict", { image: state.image, top_k: 3 },
                             { key: "predict", section: "recognition", what: "recognising" });
    $("prediction").replaceChildren(...result.predictions.map((p) => {
      const li = document.createElement("li");
      li.textContent = `${p.label} — ${(100 * p.probability).toFixed(1)}%`;
      return li;
    }));
    $("cam").src = result.cam;
    const known = result.classes.length > 12
      ? `knows ${result.classes.length.toLocaleString("en")} classes (${result.classes.slice(0, 4).join(", ")}, …)`
      : `knows only: ${result.classes.join(", ")}`;
    $("classes").textContent = `${result.model} (${result.weights}) ${known}. `
      + "The map shows where its last convolution stage saw the top class (Grad-CAM).";
    $("familiarity").textContent = result.familiar === false ? `⚠ ${result.note}` : "";
  } catch (error) {
    if (!cancelled(error)) $("prediction").textContent = error.message;
  }
}

async function segment() {
  const box = $("segmentation-result");
  box.textContent = "segmenting…";
  try {
    const result = await api("/api/segment", { image: state.image, method: $("seg-method").value,
                                               clusters: Number($("seg-k").value) },
                             { key: "segment", section: "segmentation", what: "segmenting" });
    const img = document.createElement("img"); img.src = result.png; img.alt = "segmentation";
    const list = document.createElement("p");
    list.textContent = result.segments.map((s) => `${s.name}: ${s.pixels} px`).join(" · ");
    const warning = document.createElement("p"); warning.className = "error"; warning.dataset.testid = "seg-note";
    warning.textContent = result.familiar === false ? `⚠ ${result.note}` : "";
    box.replaceChildren(img, list, warning);
  } catch (error) {
    if (!cancelled(error)) box.textContent = error.message;
  }
}

// --- start ---------------------------------------------------------------------------
async function start() {
  const config = await api("/api/config", undefined, { what: "loading" });
  config.samples.forEach((name) => option($("sample-select"), `sample:${name}`, `sample: ${name}`));
  config.banks.forEach((name) => option($("conv-filters"), name));
  state.bankDepths = config.bank_depths; state.sizeableBanks = config.sizeable_banks;
  $("conv-filters").value = "random";
  applicableSettings();
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
   "conv-transposed", "conv-output-padding"].forEach((id) => $(id).addEventListener("input", refreshConv));
  $("player-kind").addEventListener("change", () => loadScene(convSettings()));
  $("scene-step").addEventListener("click", () => stepScene(1));
  $("scene-back").addEventListener("click", () => stepScene(-1));
  $("scene-play").addEventListener("click", () => {
    if (state.timer) { clearInterval(state.timer); state.timer = null; $("scene-play").textContent = "Play"; return; }
    state.timer = setInterval(() => stepScene(1), 600); $("scene-play").textContent = "Pause";
  });
  $("filters-prev").addEventListener("click", () => { state.player.page -= 1; state.player.d = state.player.page * PER_PAGE; drawPlayer(); });
  $("filters-next").addEventListener("click", () => { state.player.page += 1; state.player.d = state.player.page * PER_PAGE; drawPlayer(); });
  document.addEventListener("pointermove", moveDrag);
  document.addEventListener("pointerup", endDrag);
  $("model-select").addEventListener("change", loadLayers);
  $("layer-select").addEventListener("change", refreshMaps);
  $("focus-map").addEventListener("mousemove", showField);
  $("predict").addEventListener("click", predict);
  $("segment").addEventListener("click", segment);
  $("seg-method").addEventListener("change", () => {  // a trained head has its own classes: K does not apply
    $("seg-k").disabled = $("seg-method").value === "head";
  });
  $("detect-run").addEventListener("click", loadDetect);
  setImage("sample:cat", "sample: cat");
  loadLayers();
}

start().catch((error) => { document.body.prepend(`explorer failed to start: ${error.message}`); });
