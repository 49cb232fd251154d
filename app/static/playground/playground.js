// namegen playground: plain JavaScript over the JSON API (GET /models, POST /sample, /next-char, /loss).
"use strict";

const $ = (id) => document.getElementById(id);
const models = {};  // name -> GET /models entry

async function api(path, body) {
  const init = body === undefined ? {} : {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body),
  };
  const response = await fetch(path, init);  // relative: works under a path prefix too
  const data = await response.json().catch(() => ({detail: response.statusText}));
  if (!response.ok) throw new Error(describeError(data.detail));
  return data;
}

function describeError(detail) {
  if (Array.isArray(detail)) {
    return detail.map((e) => `${(e.loc || []).filter((p) => p !== "body").join(".")}: ${e.msg}`).join("; ");
  }
  return String(detail);
}

function showError(id, error) {
  const element = $(id);
  element.hidden = !error;
  element.textContent = error ? error.message : "";
}

function model() { return $("model").value || undefined; }

function debounce(fn, ms) {
  let timer;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

function numberOrNull(id) {
  const value = $(id).value.trim();
  return value === "" ? null : Number(value);
}

// Latest-wins: a slow answer to an older keystroke never overwrites a newer one.
function latest(fn) {
  let counter = 0;
  return async (...args) => {
    const mine = ++counter;
    const result = await fn(...args);
    return mine === counter ? result : undefined;
  };
}

// ---- models
async function loadModels() {
  const list = await api("models");
  const select = $("model");
  for (const entry of list.models) {
    models[entry.name] = entry;
    const option = new Option(`${entry.name} (${entry.family})`, entry.name, false, entry.name === list.default);
    select.add(option);
  }
  describeModel();
}

function describeModel() {
  const entry = models[model()];
  if (!entry) return;
  const val = entry.metrics && entry.metrics.val_loss;
  $("model-info").textContent =
    `${entry.parameters.toLocaleString("en")} parameters` + (val ? ` · val loss ${val.toFixed(4)}` : "");
}

// ---- constraints (the form's optional fieldset)
function listOf(id) {
  return $(id).value.split(",").map((s) => s.trim()).filter((s) => s !== "");
}

function constraints() {  // the API's constraints object, or undefined when none is set
  const c = {};
  if ($("ends-with").value.trim()) c.ends_with = $("ends-with").value.trim();
  if (listOf("contains").length) c.contains = listOf("contains");
  if (listOf("excludes").length) c.excludes = listOf("excludes");
  const lo = numberOrNull("length-min"), hi = numberOrNull("length-max");
  if (lo !== null || hi !== null) c.length = [lo ?? 1, hi ?? (numberOrNull("max-length") ?? 32)];
  if ($("regex").value.trim()) c.regex = $("regex").value.trim();
  return Object.keys(c).length ? c : undefined;
}

function describeConstraint(info) {
  if (!info) return "";
  const p = info.p_constraint;
  const shown = p >= 0.01 ? `${(100 * p).toFixed(2)}%` : p.toPrecision(3);
  const how = {exact: "exact conditional", rejection: "rejection (exact)", smc: "sequential Monte Carlo"}[info.method];
  return `drawn by ${how} · p(constraints) ${info.method === "exact" ? "=" : "≈"} ${shown} · ${info.draws.toLocaleString("en")} draws` +
    (info.ess !== undefined ? ` · ESS ${Math.round(info.ess)}` : "");
}

// ---- sample
async function sample(event) {
  event.preventDefault();
  const button = $("sample-button");
  button.disabled = true;
  try {
    const body = {
      n: numberOrNull("n") ?? 10,
      temperature: numberOrNull("temperature") ?? 1,
      top_k: numberOrNull("top-k"),
      top_p: numberOrNull("top-p"),
      prefix: $("prefix").value,
      max_length: numberOrNull("max-length") ?? 32,
      seed: numberOrNull("seed"),
      novel: $("novel").checked,
    };
    if (model()) body.model = model();
    if (constraints()) body.constraints = constraints();
    const result = await api("sample", body);
    showError("sample-error", null);
    $("sample-note").textContent = result.complete ? `${result.names.length} names from ${result.model}` : result.reason;
    $("constraint-note").textContent = describeConstraint(result.constraint);
    $("constraint-note").dataset.method = result.constraint ? result.constraint.method : "";
    const rows = result.names.map((s) => {
      const row = document.createElement("tr");
      const tags = (s.novel ? '<span class="tag novel">novel</span>' : '<span class="tag known">in training data</span>') +
        (s.truncated ? '<span class="tag cut">cut at max length</span>' : "");
      row.innerHTML = `<td class="name"></td><td class="loss">${s.loss.toFixed(4)}</td><td>${tags}</td>`;
      row.firstChild.textContent = s.name;
      return row;
    });
    $("names").tBodies[0].replaceChildren(...rows);
  } catch (error) {
    showError("sample-error", error);
  } finally {
    button.disabled = false;
  }
}

// ---- next character
const fetchNext = latest((prefix, given) => api("next-char", given ?
  {model: model(), prefix, constraints: given, max_length: numberOrNull("max-length") ?? 32, seed: 0} :
  {model: model(), prefix}));

async function nextChar() {
  try {
    const given = constraints();
    const result = await fetchNext($("next-prefix").value, given);
    if (!result) return;
    showError("next-error", null);
    drawChart(result.distribution, models[model()]?.alphabet);
    $("chart").dataset.prefix = result.prefix;
    $("chart").dataset.conditional = result.constraint ? "yes" : "no";
    $("next-note").textContent = result.constraint ?
      `given the constraints: ${result.constraint.method === "exact" ? "exact" : `estimated from ${result.constraint.draws.toLocaleString("en")} weighted particles (ESS ${Math.round(result.constraint.ess)})`}` : "";
  } catch (error) {
    showError("next-error", error);
  }
}

function drawChart(distribution, alphabet) {
  const prob = Object.fromEntries(distribution.map((d) => [d.char, d.prob]));
  const order = alphabet ? [...alphabet] : distribution.map((d) => d.char);
  const top = Math.max(...distribution.map((d) => d.prob));
  const bars = order.map((char) => {
    const p = prob[char];
    const bar = document.createElement("div");
    bar.className = char === "." ? "bar end" : "bar";
    bar.dataset.char = char;
    bar.dataset.prob = String(p);
    bar.title = `${char === "." ? ". (end)" : char}: ${(100 * p).toFixed(2)}%`;
    bar.innerHTML = `<span class="pct"></span><div class="fill"></div><span class="char"></span>`;
    bar.querySelector(".pct").textContent = p >= 0.01 ? `${Math.round(100 * p)}%` : "";
    bar.querySelector(".fill").style.height = `${(85 * p) / top}%`;
    bar.querySelector(".char").textContent = char;
    return bar;
  });
  $("chart").replaceChildren(...bars);
}

// ---- score a word
const fetchLoss = latest((word) => api("loss", {model: model(), word}));

function colour(p) {  // red at p <= 0.001, green at p = 1, on a log scale
  const t = Math.min(1, Math.max(0, (Math.log10(p) + 3) / 3));
  return `hsl(${Math.round(120 * t)} ${70 - 15 * t}% ${60 - 10 * t}%)`;
}

async function score() {
  const word = $("word").value;
  if (!word.trim()) {
    $("strip").replaceChildren();
    $("word-loss").textContent = "";
    showError("score-error", null);
    return;
  }
  try {
    const result = await fetchLoss(word);
    if (!result) return;
    showError("score-error", null);
    const cells = result.chars.map((c) => {
      const cell = document.createElement("div");
      cell.className = "cell";
      cell.dataset.char = c.char;
      cell.dataset.prob = String(c.prob);
      cell.style.background = colour(c.prob);
      cell.title = `p(${c.char}) = ${c.prob.toPrecision(4)}, NLL ${c.nll.toFixed(3)} nats`;
      cell.innerHTML = `<span class="char"></span><span class="p"></span>`;
      cell.querySelector(".char").textContent = c.char;
      cell.querySelector(".p").textContent = c.prob.toFixed(3);
      return cell;
    });
    $("strip").replaceChildren(...cells);
    $("strip").dataset.word = result.word;
    $("word-loss").dataset.loss = String(result.loss);
    $("word-loss").textContent =
      `${result.word}: loss ${result.loss.toFixed(4)} nats/char · perplexity ${result.perplexity.toFixed(2)}`;
  } catch (error) {
    showError("score-error", error);
  }
}

// ---- wiring
$("sample-form").addEventListener("submit", sample);
$("next-prefix").addEventListener("input", debounce(nextChar, 120));
for (const id of ["ends-with", "contains", "excludes", "length-min", "length-max", "regex", "max-length"]) {
  $(id).addEventListener("input", debounce(nextChar, 300));
}
$("word").addEventListener("input", debounce(score, 120));
$("model").addEventListener("change", () => { describeModel(); nextChar(); score(); });
loadModels().then(nextChar).catch((error) => showError("sample-error", error));
