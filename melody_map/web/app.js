// Melody Map's page: every name from the data is set as text (textContent), never as markup.
"use strict";

const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

// GET when body is undefined, else POST the body as JSON; throws the server's one-line error.
async function call(path, body) {
  const options = body === undefined ? {} :
    { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const response = await fetch(path, options);
  const data = await response.json().catch(() => ({ error: `${response.status} ${response.statusText}` }));
  if (!response.ok) throw new Error(data.error || `${response.status} ${response.statusText}`);
  return data;
}

function kValue() {
  const k = parseInt($("k").value, 10);
  return Number.isFinite(k) ? Math.min(Math.max(k, 1), 50) : 10;
}

// One recommendation: rank (CSS counter), title, artist, score, and the reasons where there are some.
function recItem(item) {
  const li = el("li", "rec");
  const what = el("div");
  what.append(el("div", "title", item.track ?? item.item ?? item.artist ?? item.name),
              el("div", "artist", item.track !== undefined && item.artist ? item.artist : ""));
  li.append(what, el("span", "score", typeof item.score === "number" ? item.score.toFixed(3) : ""));
  if (item.reasons && item.reasons.length) {
    const names = item.reasons.map((r) => r.track + (r.same_artist ? " (same artist)" : ""));
    li.append(el("div", "why", "because they have: " + names.join("; ")));
  }
  return li;
}

function showRecs(list, items) {
  list.replaceChildren(...items.map(recItem));
  if (!items.length) list.append(el("li", "muted", "nothing left to recommend"));
}

// An input with suggestions from /api/search: arrow keys move, Enter or a click picks one.
function combo(input, list, kind, onPick) {
  let timer = null, results = [], active = -1, asked = 0;
  const close = () => { list.hidden = true; input.setAttribute("aria-expanded", "false"); active = -1; };
  const mark = () => [...list.children].forEach((li, i) => li.setAttribute("aria-selected", String(i === active)));
  const pick = (i) => { const chosen = results[i]; close(); if (chosen) onPick(chosen); };
  const render = () => {
    list.replaceChildren(...results.map((r, i) => {
      const li = el("li", "suggestion", r.name);
      li.setAttribute("role", "option");
      li.addEventListener("mousedown", (event) => { event.preventDefault(); pick(i); });
      return li;
    }));
    list.hidden = !results.length;
    input.setAttribute("aria-expanded", String(!list.hidden));
  };
  input.addEventListener("input", () => {
    clearTimeout(timer);
    const q = input.value.trim();
    if (!q) { results = []; close(); return; }
    timer = setTimeout(async () => {
      const ticket = ++asked;
      try {
        const data = await call(`/api/search?kind=${kind}&limit=10&q=${encodeURIComponent(q)}`);
        if (ticket !== asked) return;  // a later keystroke's answer wins
        results = data.results; active = -1; render();
      } catch (e) { showError(e.message); }
    }, 150);
  });
  input.addEventListener("keydown", (event) => {
    if (list.hidden) return;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      active = (active + (event.key === "ArrowDown" ? 1 : results.length - 1)) % results.length;
      mark();
    } else if (event.key === "Enter") {
      event.preventDefault();
      pick(active < 0 ? 0 : active);
    } else if (event.key === "Escape") close();
  });
  input.addEventListener("blur", () => setTimeout(close, 100));
}

let currentUser = null;

async function showUser(userId) {
  showError("");
  const user = await call(`/api/user?user_id=${encodeURIComponent(userId)}`);
  currentUser = user;
  $("user-input").value = user.user_id;
  const known = user.known_tracks ?? user.known_items ?? 0;
  $("user-info").textContent = `user ${user.user_index}` + (user.name ? ` “${user.name}”` : "") +
    ` · ${known} known tracks, left out below`;
  const data = await call("/api/explain", { user_id: user.user_id, k: kValue() });
  showRecs($("user-recs"), data.items);
  const playlists = user.playlists || [];
  $("playlist-select").replaceChildren(...playlists.map((name) => { const o = el("option", "", name); o.value = name; return o; }));
  $("continue-recs").replaceChildren();
  $("playlist-box").hidden = !playlists.length;
  $("plot-box").hidden = false;
  if ($("plot-box").open) loadPlot();
}

function loadPlot() {
  if (!currentUser) return;
  $("plot").src = `/api/plot?k=5&user_id=${encodeURIComponent(currentUser.user_id)}`;
}

const chosen = new Map();  // track name -> its index, in the order chosen

function showChosen() {
  $("chosen").replaceChildren(...[...chosen.keys()].map((name) => {
    const li = el("li", "chip", name);
    const remove = el("button", "", "×");
    remove.type = "button";
    remove.setAttribute("aria-label", "remove " + name);
    remove.addEventListener("click", () => { chosen.delete(name); showChosen(); });
    li.append(remove);
    return li;
  }));
  $("new-button").disabled = !chosen.size;
}

async function run(task) {
  try { await task(); } catch (e) { showError(e.message); }
}

document.addEventListener("DOMContentLoaded", () => {
  combo($("user-input"), $("user-suggestions"), "users", (r) => run(() => showUser(r.name)));
  combo($("track-input"), $("track-suggestions"), "tracks", (r) => {
    chosen.set(r.name, r.index);
    $("track-input").value = "";
    showChosen();
  });
  $("new-button").addEventListener("click", () => run(async () => {
    showError("");
    const data = await call("/api/new-listener", { tracks: [...chosen.keys()], k: kValue() });
    showRecs($("new-recs"), data.items);
  }));
  $("continue-button").addEventListener("click", () => run(async () => {
    showError("");
    const data = await call("/api/continue",
      { user_id: currentUser.user_id, playlist: $("playlist-select").value, k: kValue() });
    showRecs($("continue-recs"), data.items);
  }));
  $("k").addEventListener("change", () => { if (currentUser) run(() => showUser(currentUser.user_id)); });
  $("plot-box").addEventListener("toggle", () => { if ($("plot-box").open) loadPlot(); });
  $("plot").addEventListener("error", () => showError("the neighbourhood picture did not load"));
  run(async () => {
    const health = await call("/health");
    const counts = Object.entries(health.counts).map(([what, n]) => `${n.toLocaleString()} ${what}`).join(", ");
    $("model").textContent = `${health.model} · ${health.data || health.checkpoint} · ${counts}`;
  });
});
