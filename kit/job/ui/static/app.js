// The search page: text search, photo search (drop / pick / phone camera), result grid, metadata dialog.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { hits: [] };

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

function setStatus(text) { $("status").textContent = text; }

function render(hits, what, tookMs) {
  state.hits = hits;
  const grid = $("results");
  grid.replaceChildren();
  hits.forEach((hit, i) => {
    const card = document.createElement("button");
    card.type = "button";
    card.className = "card";
    card.dataset.id = hit.id;
    card.dataset.rank = String(i + 1);
    const img = document.createElement("img");
    const name = (hit.source && hit.source.file_name) || hit.id.slice(0, 12);
    img.alt = name;
    if (hit.source && hit.source.thumbnail) img.src = "data:image/jpeg;base64," + hit.source.thumbnail;
    const cap = document.createElement("div");
    cap.className = "cap";
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = "#" + (i + 1) + " " + hit.score.toFixed(4);
    cap.append(score);
    if (hit.label) {
      const lab = document.createElement("span");
      lab.className = "label label-" + hit.label;
      lab.textContent = hit.label;
      cap.append(lab);
    }
    const nm = document.createElement("div");
    nm.className = "name";
    nm.textContent = name;
    cap.append(nm);
    card.append(img, cap);
    card.addEventListener("click", () => openDetails(hit));
    grid.append(card);
  });
  setStatus(hits.length ? `${hits.length} results for ${what} in ${tookMs} ms` : `no results for ${what}`);
}

function openDetails(hit) {
  const src = Object.assign({}, hit.source || {});
  const thumb = src.thumbnail;
  delete src.thumbnail;
  $("details-img").src = thumb ? "data:image/jpeg;base64," + thumb : "";
  $("details-title").textContent = (src.file_name || hit.id) + "  ·  score " + hit.score.toFixed(4) +
    (hit.label ? "  ·  " + hit.label : "");
  $("details-meta").textContent = JSON.stringify(Object.assign({ id: hit.id }, src), null, 2);
  $("details").showModal();
}

async function handle(response) {
  let body = null;
  try { body = await response.json(); } catch (e) { /* not JSON */ }
  if (!response.ok) {
    const err = body && body.error;
    throw new Error(err ? err.message + (err.hint ? " — " + err.hint : "") : "HTTP " + response.status);
  }
  return body;
}

async function textSearch(event) {
  if (event) event.preventDefault();
  const q = $("q").value.trim();
  if (!q) { showError("Type something to search for."); return; }
  showError("");
  setStatus("searching…");
  const params = new URLSearchParams({ q, mode: $("mode").value, field: $("field").value, k: $("k").value });
  try {
    const body = await handle(await fetch("/api/search?" + params.toString()));
    render(body.hits, JSON.stringify(q), body.took_ms);
  } catch (e) {
    setStatus("");
    showError(e.message);
  }
}

async function photoSearch(file) {
  if (!file) return;
  showError("");
  setStatus("searching with " + file.name + "…");
  const form = new FormData();
  form.append("photo", file, file.name);
  form.append("k", $("k").value);
  try {
    const body = await handle(await fetch("/api/similar", { method: "POST", body: form }));
    render(body.hits, "photo " + file.name, body.took_ms);
  } catch (e) {
    setStatus("");
    showError(e.message);
  }
}

function wire() {
  $("search-form").addEventListener("submit", textSearch);
  $("photo").addEventListener("change", (e) => photoSearch(e.target.files[0]));
  const drop = $("drop");
  ["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => {
    e.preventDefault();
    drop.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((t) => drop.addEventListener(t, () => drop.classList.remove("over")));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    const file = e.dataTransfer && e.dataTransfer.files[0];
    if (file) photoSearch(file);
  });
  fetch("/api/info").then(handle).then((info) => {
    $("where").textContent = "index " + info.index + (info.cluster ? " at " + info.cluster : "");
  }).catch(() => {});
}

wire();
