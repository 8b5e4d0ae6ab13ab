// The search page: text search, photo search (drop / pick / phone camera), "more like this", result
// grid with tags / OCR text / caption, metadata dialog. The search state lives in the URL
// (?q=&mode=&field=&k= or ?like=<id>&k=), so a search can be shared and the back button works.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { hits: [], info: null };

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

function showNotice(message) {
  const box = $("notice");
  box.textContent = message || "";
  box.hidden = !message;
}

function setStatus(text) { $("status").textContent = text; }

function showLanding(on) {
  $("landing").hidden = !on;
  if (on) { $("results").replaceChildren(); setStatus(""); showNotice(""); }
}

function showQueryPhoto(url, name, title) {
  $("query").hidden = !url;
  if (url) {
    $("query-img").src = url;
    $("query-name").textContent = name || "";
    $("query-title").textContent = title || "Searching with your photo";
  }
}

function noticeFor(notes) {  // the server's notes, in a browser user's words
  if (!notes || !notes.length) return "";
  if (notes.some((n) => n.includes("not calibrated"))) {
    return "Only exact copies are marked: the similarity labels have not been calibrated for this collection yet.";
  }
  if (notes.some((n) => n.includes("no perceptual hashes"))) {
    return "Copies cannot be recognised in this collection yet: its pictures need to be added again.";
  }
  return (state.info && state.info.about) || notes[0];
}

function line(cls, label, text) {
  const div = document.createElement("div");
  div.className = cls;
  const b = document.createElement("span");
  b.className = "what";
  b.textContent = label + " ";
  div.append(b, document.createTextNode(text));
  return div;
}

function render(hits, what, tookMs, notes) {
  state.hits = hits;
  showLanding(false);
  const grid = $("results");
  grid.replaceChildren();
  hits.forEach((hit, i) => {
    const src = hit.source || {};
    const card = document.createElement("article");
    card.className = "card";
    card.dataset.id = hit.id;
    card.dataset.rank = String(i + 1);
    const open = document.createElement("button");
    open.type = "button";
    open.className = "open";
    const name = src.file_name || hit.id.slice(0, 12);
    open.setAttribute("aria-label", "details of " + name);
    const img = document.createElement("img");
    img.alt = name;
    if (src.thumbnail) img.src = "data:image/jpeg;base64," + src.thumbnail;
    open.append(img);
    open.addEventListener("click", () => openDetails(hit));
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
    const tags = Array.isArray(src.tags) ? src.tags : (src.tags ? [src.tags] : []);
    if (tags.length) cap.append(line("tags", "tags", tags.slice(0, 6).join(", ")));
    if (src.ocr_text && String(src.ocr_text).trim()) cap.append(line("ocr", "text", String(src.ocr_text).replace(/\s+/g, " ").trim()));
    if (src.caption) cap.append(line("caption", "caption", src.caption));
    const more = document.createElement("button");
    more.type = "button";
    more.className = "more";
    more.textContent = "More like this";
    more.setAttribute("aria-label", "more like " + name);
    more.addEventListener("click", () => go({ like: hit.id, k: $("k").value }));
    card.append(open, cap, more);
    grid.append(card);
  });
  setStatus(hits.length ? `${hits.length} results for ${what} in ${tookMs} ms` : `no results for ${what}`);
  showNotice(noticeFor(notes));
}

function openDetails(hit) {
  const src = Object.assign({}, hit.source || {});
  const thumb = src.thumbnail;
  delete src.thumbnail;
  $("details-img").src = thumb ? "data:image/jpeg;base64," + thumb : "";
  $("details-img").alt = src.file_name || hit.id;
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
    throw new Error(err ? err.message : "The search did not work (the server answered " + response.status + "). Please try again.");
  }
  return body;
}

function failed(e) {
  setStatus("");
  showError(e instanceof TypeError ? "The search page cannot reach its server. Check your connection and try again." : e.message);
}

// --- the URL is the search state -------------------------------------------------------------
function stateFromUrl() {
  const p = new URLSearchParams(location.search);
  return { q: p.get("q") || "", mode: p.get("mode") || "vector", field: p.get("field") || "image",
           k: p.get("k") || "30", like: p.get("like") || "" };
}

function urlFor(s) {
  const p = new URLSearchParams();
  if (s.like) { p.set("like", s.like); } else if (s.q) {
    p.set("q", s.q);
    if (s.mode && s.mode !== "vector") p.set("mode", s.mode);
    if (s.field && s.field !== "image") p.set("field", s.field);
  }
  if (s.k && s.k !== "30" && (s.q || s.like)) p.set("k", s.k);
  const qs = p.toString();
  return location.pathname + (qs ? "?" + qs : "");
}

function go(s) {  // a new search: a new history entry
  history.pushState(s, "", urlFor(s));
  run(s);
}

async function run(s) {
  $("q").value = s.q || "";
  $("mode").value = s.mode || "vector";
  $("field").value = s.field || "image";
  $("k").value = s.k || "30";
  showError("");
  if (!s.like) showQueryPhoto(null);
  if (s.like) return moreLike(s.like, s.k);
  if (!s.q) { showLanding(true); return; }
  setStatus("searching…");
  const params = new URLSearchParams({ q: s.q, mode: s.mode || "vector", field: s.field || "image", k: s.k || "30" });
  try {
    const body = await handle(await fetch("/api/search?" + params.toString()));
    render(body.hits, JSON.stringify(s.q), body.took_ms, body.notes);
  } catch (e) { failed(e); }
}

async function moreLike(id, k) {
  setStatus("finding more like this…");
  try {
    const body = await handle(await fetch("/api/similar?" + new URLSearchParams({ id, k: k || "30" }).toString()));
    const first = body.hits.find((h) => h.id === id);
    showQueryPhoto(first && first.source.thumbnail ? "data:image/jpeg;base64," + first.source.thumbnail : null,
                   body.query || id, "More like this picture");
    render(body.hits, "more like " + (body.query || id), body.took_ms, body.notes);
  } catch (e) { failed(e); }
}

function textSearch(event) {
  if (event) event.preventDefault();
  const q = $("q").value.trim();
  if (!q) { showError("Type a few words describing the picture you are looking for."); return; }
  go({ q, mode: $("mode").value, field: $("field").value, k: $("k").value });
}

async function photoSearch(file) {
  if (!file) return;
  showError("");
  if (file.type && !file.type.startsWith("image/")) {
    showError("That file is not a picture. Choose a photo (JPEG, PNG or WebP).");
    return;
  }
  const previous = $("query-img").src;
  if (previous && previous.startsWith("blob:")) URL.revokeObjectURL(previous);
  showQueryPhoto(URL.createObjectURL(file), file.name);
  history.pushState({ photo: file.name }, "", location.pathname + "?photo=" + encodeURIComponent(file.name));
  setStatus("searching with " + file.name + "…");
  const form = new FormData();
  form.append("photo", file, file.name);
  form.append("k", $("k").value);
  try {
    const body = await handle(await fetch("/api/similar", { method: "POST", body: form }));
    render(body.hits, "photo " + file.name, body.took_ms, body.notes);
  } catch (e) { failed(e); }
}

function landing(info) {
  $("about").textContent = info.about || "";
  const list = $("examples");
  list.replaceChildren();
  (info.examples || []).forEach((q) => {
    const li = document.createElement("li");
    const a = document.createElement("a");
    a.href = urlFor({ q });
    a.textContent = q;
    a.className = "example";
    a.addEventListener("click", (e) => { e.preventDefault(); go({ q, mode: "vector", field: "image", k: $("k").value }); });
    li.append(a);
    list.append(li);
  });
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
  drop.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("photo").click(); }
  });
  document.addEventListener("keydown", (e) => {  // "/" jumps to the search box, as on most search sites
    const typing = e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement;
    if (e.key === "/" && !typing && !$("details").open) { e.preventDefault(); $("q").focus(); $("q").select(); }
  });
  $("home").addEventListener("click", (e) => { e.preventDefault(); go({ q: "" }); });
  window.addEventListener("popstate", () => {
    const s = stateFromUrl();
    if (new URLSearchParams(location.search).get("photo")) {  // a photo cannot live in the URL
      showLanding(true);
      setStatus("Choose the photo again to repeat that search.");
      return;
    }
    run(s);
  });
  fetch("/api/info").then(handle).then((info) => {
    state.info = info;
    $("where").textContent = "index " + info.index + (info.model ? " · " + info.model.replace(/^clip: /, "") : "");
    landing(info);
  }).catch(() => {}).finally(() => {
    const s = stateFromUrl();
    history.replaceState(s, "", urlFor(s));
    run(s);
  });
}

wire();
