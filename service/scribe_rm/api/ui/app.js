// SCRIBE-RM inspector. Plain DOM, no framework and no build step. Every text that comes from a trajectory,
// a card or the server is set with textContent, never parsed as HTML. The API key lives in this page's
// memory only and is sent as "Authorization: Bearer"; a reload of the page asks for it again.
"use strict";

let apiKey = null;
let healthTimer = null;
let cards = [];

function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else if (key === "on") for (const [event, fn] of Object.entries(value)) node.addEventListener(event, fn);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function $(id) { return document.getElementById(id); }

class ApiError extends Error {
  constructor(status, detail) { super(`${status}: ${detail}`); this.status = status; }
}

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (apiKey) headers["Authorization"] = `Bearer ${apiKey}`;
  if (options.body) headers["Content-Type"] = "application/json";
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401) {
    $("key-form").hidden = false;
    $("key-message").textContent = apiKey ? "that key was refused" : "this service needs an API key";
    throw new ApiError(401, "missing or invalid API key");
  }
  const text = await response.text();
  if (!response.ok) {
    let detail = text;
    try { detail = JSON.stringify(JSON.parse(text).detail, null, 1); } catch (_) { /* not JSON */ }
    throw new ApiError(response.status, detail);
  }
  return path === "/metrics" ? text : JSON.parse(text);
}

function fmt(value, digits = 3) {
  return value === null || value === undefined ? "-" : (typeof value === "number" ? value.toFixed(digits) : String(value));
}

// ---------- score view ----------

function itemFrom(text) {
  const trimmed = text.trim();
  let parsed = null;
  try { parsed = JSON.parse(trimmed); } catch (_) { return { id: "pasted", response: text }; }
  if (Array.isArray(parsed)) return { id: "pasted", messages: parsed };
  if (parsed && Array.isArray(parsed.items)) return parsed.items[0];
  if (parsed && typeof parsed === "object") return Object.assign({ id: "pasted" }, parsed);
  return { id: "pasted", response: text };
}

async function score() {
  $("score-error").textContent = "";
  const item = itemFrom($("trajectory").value);
  const body = { items: [item], split: { mode: $("split-mode").value }, explain: true };
  try {
    const result = await api("/score", { method: "POST", body: JSON.stringify(body) });
    renderScore(item, result);
  } catch (error) {
    $("score-error").textContent = `scoring failed: ${error.message}`;
  }
}

function renderScore(item, response) {
  const result = response.results[0];
  const summary = $("score-summary");
  summary.replaceChildren(
    el("div", { text: `status ${result.status}`, "data-testid": "status" }),
    el("div", { text: `reward ${fmt(result.reward)}`, "data-testid": "reward" }),
    el("div", { text: `process ${fmt(result.process_reward)}` }),
    el("div", { text: `outcome ${fmt(result.outcome)}` }),
    el("div", { text: `aggregation ${response.aggregation}` }),
    el("div", { text: `scope ${result.scope ?? "-"}${result.scope_source === "auto" ? " (chosen from its steps)" : ""}` }),
    el("div", { text: `weights ${response.weights.outcome} / ${response.weights.process}` }),
    el("div", { text: `library ${response.library_version}` }),
    el("div", { text: `judge ${response.judge_model}` }));
  if (result.error) summary.append(el("div", { class: "error", text: result.error }));
  if (result.split_note) summary.append(el("div", { class: "muted", text: result.split_note }));
  renderResponse(item, result.steps);
  $("steps").replaceChildren(...result.steps.map((step) => stepCard(step)));
  $("step-detail").textContent = "Click a step.";
}

function renderResponse(item, steps) {
  const view = $("response-view");
  view.replaceChildren();
  if (typeof item.response !== "string") { view.hidden = true; return; }
  view.hidden = false;
  const text = item.response;
  let position = 0;
  for (const step of steps.filter((s) => s.start !== null).sort((a, b) => a.start - b.start)) {
    if (step.start > position) view.append(document.createTextNode(text.slice(position, step.start)));
    const mark = el("mark", { text: text.slice(step.start, step.end), "data-step": String(step.index),
                              on: { click: () => select(step) } });
    view.append(mark);
    position = step.end;
  }
  view.append(document.createTextNode(text.slice(position)));
}

function stepCard(step) {
  const fill = el("div");
  fill.style.width = `${step.score === null ? 0 : ((100 * step.score) / 3).toFixed(1)}%`;  // CSSOM: allowed by the CSP
  const alternatives = (step.alternatives || []).map((a) => `${a.prototype_id} ${fmt(a.similarity)}`).join(", ");
  const card = el("div", { class: "step", "data-step": String(step.index), on: { click: () => select(step) } }, [
    el("div", { class: "head" }, [
      el("strong", { text: `Step ${step.index}` }),
      el("span", { class: "card-name", text: step.prototype_name }),
      el("span", { class: "muted", text: step.prototype_id }),
    ]),
    el("div", { class: "bar" }, [fill]),
    el("div", { class: "score", text: `score ${fmt(step.score, 2)} / 3` }),
    el("div", { class: "muted", text:
      `P(0..3) ${(step.probabilities || []).map((p) => p.toFixed(2)).join(" ")} · confidence ${fmt(step.confidence, 2)}` +
      ` · similarity ${fmt(step.similarity)} · cache ${step.cache_hit ? "hit" : "miss"}` }),
    el("div", { class: "muted alternatives", text: alternatives ? `alternatives: ${alternatives}` : "" }),
  ]);
  if (step.fallback) card.querySelector(".head").append(el("span", { class: "fallback", text: "fallback" }));
  if (step.error) card.append(el("div", { class: "error", text: step.error }));
  return card;
}

async function select(step) {
  for (const node of document.querySelectorAll(".selected")) node.classList.remove("selected");
  for (const node of document.querySelectorAll(`[data-step="${step.index}"]`)) node.classList.add("selected");
  const detail = $("step-detail");
  detail.replaceChildren(el("h3", { text: `Step ${step.index}: ${step.prototype_name}` }));
  if (step.subgoal) detail.append(el("p", { text: `subgoal: ${step.subgoal}` }));
  detail.append(el("h4", { text: "Judge messages" }));
  for (const message of step.judge_messages || []) {
    detail.append(el("div", { class: "muted", text: message.role }), el("div", { class: "message", text: message.content }));
  }
  try {
    const card = (await api(`/prototypes/${encodeURIComponent(step.prototype_id)}`)).prototype;
    detail.append(el("h4", { text: "Card" }), cardView(card));
  } catch (error) {
    detail.append(el("p", { class: "error", text: error.message }));
  }
}

function cardView(card) {
  const box = el("div", { class: "card-view" }, [
    el("p", { text: `${card.id} · ${card.domain} · ${card.status || "active"}` }),
    el("p", { text: `When to use: ${card.when_to_use}` }),
    el("h4", { text: "Procedure" }), el("ul", {}, card.procedure.map((p) => el("li", { text: p }))),
    el("h4", { text: "Rubric" }),
    el("ul", {}, ["3", "2", "1", "0"].map((level) => el("li", { text: `${level}: ${card.rubric[level]}` }))),
    el("h4", { text: "Failure modes" }),
    el("ul", {}, card.failure_modes.map((fm) => el("li", { text: `${fm.name} (score ${fm.score}): ${fm.description}` }))),
    el("h4", { text: "Anchors (examples)" }), el("ul", {}, card.examples.map((e) => el("li", { text: e }))),
  ]);
  return box;
}

async function loadExamples() {
  try {
    const examples = await api("/ui-examples");
    const select = $("example-select");
    select.replaceChildren(el("option", { value: "", text: "(paste your own)" }));
    examples.forEach((example, i) => select.append(el("option", { value: String(i), text: example.name })));
    select.onchange = () => {
      const chosen = examples[Number(select.value)];
      if (chosen) $("trajectory").value = JSON.stringify(chosen.item, null, 2);
    };
  } catch (_) { /* a 401 shows the key form */ }
}

// ---------- library view ----------

async function loadLibrary() {
  const listing = await api("/prototypes");
  cards = listing.prototypes;
  $("library-version").textContent = `library ${listing.library_version} · ${cards.length} cards`;
  renderCardList();
}

function renderCardList() {
  const query = $("card-search").value.toLowerCase();
  const shown = cards.filter((c) => `${c.id} ${c.name} ${c.when_to_use}`.toLowerCase().includes(query));
  $("card-list").replaceChildren(...shown.map((c) => el("li", { "data-card": c.id, on: { click: () => showCard(c.id) } }, [
    el("strong", { text: c.name }), el("div", { class: "muted", text: c.id }),
  ])));
}

async function showCard(id) {
  const card = (await api(`/prototypes/${encodeURIComponent(id)}`)).prototype;
  $("card-detail").replaceChildren(el("h3", { text: card.name }), cardView(card));
}

async function route() {
  const query = { text: $("route-text").value };
  if ($("route-domain").value.trim()) query.domain = $("route-domain").value.trim();
  const table = $("route-result");
  try {
    const result = (await api("/route", { method: "POST", body: JSON.stringify({ items: [query] }) })).results[0];
    table.replaceChildren(el("tr", {}, [el("th", { text: "card" }), el("th", { text: "similarity" })]),
      ...result.alternatives.map((a) => el("tr", {}, [el("td", { text: a.prototype_id }), el("td", { text: fmt(a.similarity) })])),
      el("tr", {}, [el("td", { text: `chosen: ${result.prototype_id}${result.fallback ? " (fallback)" : ""}` })]));
  } catch (error) {
    table.replaceChildren(el("tr", {}, [el("td", { class: "error", text: error.message })]));
  }
}

// ---------- health view ----------

function metricSum(text, name, labelFilter = "") {
  let total = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith(name) && (line[name.length] === "{" || line[name.length] === " ") && line.includes(labelFilter)) {
      total += Number(line.slice(line.lastIndexOf(" ") + 1)) || 0;
    }
  }
  return total;
}

async function refreshHealth() {
  const rows = [];
  try {
    const ready = await fetch("/readyz").then((r) => r.json());
    rows.push(["ready", String(ready.ready)], ["checks", JSON.stringify(ready.checks)]);
    const listing = await api("/prototypes");
    rows.push(["library version", listing.library_version], ["cards", String(listing.prototypes.length)]);
    const metrics = await api("/metrics");
    const build = metrics.split("\n").find((l) => l.startsWith("scribe_build_info{"));
    if (build) rows.push(["build", build.slice("scribe_build_info".length, build.lastIndexOf("}") + 1)]);
    rows.push(["score requests", String(metricSum(metrics, "http_requests_total", 'handler="/score"'))]);
    for (const status of ["ok", "judge_error", "timeout", "invalid"]) {
      rows.push([`items ${status}`, String(metricSum(metrics, "scribe_items_total", `status="${status}"`))]);
    }
    const hits = metricSum(metrics, "scribe_cache_lookups_total", 'result="hit"');
    const misses = metricSum(metrics, "scribe_cache_lookups_total", 'result="miss"');
    rows.push(["judgement cache hit rate", hits + misses ? (hits / (hits + misses)).toFixed(3) : "-"]);
    const steps = metricSum(metrics, "scribe_steps_total");
    rows.push(["fallback rate", steps ? (metricSum(metrics, "scribe_route_fallback_total") / steps).toFixed(3) : "-"]);
    const count = metricSum(metrics, "scribe_judge_latency_seconds_count");
    rows.push(["judge latency mean (s)", count ? (metricSum(metrics, "scribe_judge_latency_seconds_sum") / count).toFixed(3) : "-"]);
  } catch (error) {
    rows.push(["error", error.message]);
  }
  $("health-table").replaceChildren(...rows.map(([k, v]) => el("tr", { "data-metric": k }, [el("th", { text: k }), el("td", { text: v })])));
}

// ---------- wiring ----------

function show(view) {
  for (const tab of document.querySelectorAll(".tab")) tab.classList.toggle("active", tab.dataset.view === view);
  for (const section of document.querySelectorAll(".view")) section.hidden = section.id !== `view-${view}`;
  clearInterval(healthTimer);
  if (view === "library") loadLibrary().catch((e) => { $("card-detail").textContent = e.message; });
  if (view === "health") { refreshHealth(); healthTimer = setInterval(refreshHealth, 5000); }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => show(tab.dataset.view));
  $("score-button").addEventListener("click", score);
  $("upload").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    if (!file) return;
    const text = await file.text();
    // a JSONL file of items: its first item
    $("trajectory").value = file.name.endsWith(".jsonl") ? (text.split("\n").find((line) => line.trim()) || "") : text;
  });
  $("route-button").addEventListener("click", route);
  $("card-search").addEventListener("input", renderCardList);
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    apiKey = $("key-input").value.trim() || null;
    $("key-input").value = "";
    $("key-message").textContent = "key set";
    loadExamples();
  });
  loadExamples();
});
