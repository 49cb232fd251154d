// namegen playground: plain JavaScript over the JSON API (GET /models, POST /sample, /next-char, /loss,
// /classify).
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

// Names are shown capitalised ("Emma") when the model's alphabet has no capitals; the API's text
// (lowercase) is what the page sends, stores and downloads.
function display(name) {
  const alphabet = models[model()]?.alphabet || "";
  if (alphabet !== alphabet.toLowerCase()) return name;
  return name.charAt(0).toLocaleUpperCase("en") + name.slice(1);
}

function nameLike(percentile) {  // "more name-like than 87 % of real names"
  return percentile === null || percentile === undefined ? "" : `${Math.round(percentile)} %`;
}

// The gender picked for a conditional model (GET /models lists its `conditions`), else none.
function condition() {
  const value = $("gender").value;
  return value && models[model()]?.conditions?.gender ? {gender: value} : undefined;
}

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
  const values = entry.conditions?.gender;  // the selector shows only for a conditional model
  const select = $("gender");
  const kept = select.value;
  select.replaceChildren(new Option("any", ""), ...(values || []).map((v) => new Option(v, v)));
  select.value = values && values.includes(kept) ? kept : "";
  $("gender-label").hidden = !values;
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
      distinct: $("distinct").checked,
      exclude: $("exclude").value.split(",").map((x) => x.trim()).filter((x) => x),
      min_distance: Number($("min-distance").value),
    };
    if (model()) body.model = model();
    if (constraints()) body.constraints = constraints();
    if (condition()) body.condition = condition();
    const result = await api("sample", body);
    showError("sample-error", null);
    $("sample-note").textContent = result.complete ? `${result.names.length} names from ${result.model}` : result.reason;
    $("constraint-note").textContent = describeConstraint(result.constraint);
    $("constraint-note").dataset.method = result.constraint ? result.constraint.method : "";
    shortlist.painters = [];  // the stars of the rows replaced
    $("names").tBodies[0].replaceChildren(...result.names.map((s) => nameRow(s, result.model)));
  } catch (error) {  // no stale answer under the message
    shortlist.painters = [];
    $("names").tBodies[0].replaceChildren();
    $("sample-note").textContent = "";
    $("constraint-note").textContent = "";
    showError("sample-error", error);
  } finally {
    button.disabled = false;
  }
}

function nameRow(s, modelName) {
  const row = document.createElement("tr");
  row.dataset.name = s.name;
  const tags = (s.novel ? '<span class="tag novel" title="not in the model\'s training word list">novel</span>'
    : '<span class="tag known" title="in the model\'s training word list">real name</span>') +
    (s.truncated ? '<span class="tag cut" title="cut at max length">cut</span>' : "");
  row.innerHTML = `<td><button type="button" class="star"></button></td><td class="name"></td>` +
    `<td class="loss">${s.loss.toFixed(4)}</td><td class="pct"></td><td>${tags}</td>`;
  row.querySelector(".name").textContent = display(s.name);
  const pct = row.querySelector(".pct");
  pct.textContent = nameLike(s.percentile);
  pct.title = (s.percentile === null ? "" : `more name-like than ${s.percentile} % of real names; `) +
    `loss ${s.loss.toFixed(4)} nats/char`;
  const star = row.querySelector(".star");
  const entry = {name: s.name, model: modelName, loss: s.loss, percentile: s.percentile};
  const paint = () => {
    const on = shortlist.has(entry);
    star.textContent = on ? "\u2605" : "\u2606";
    star.setAttribute("aria-pressed", String(on));
    star.setAttribute("aria-label", `${on ? "Remove" : "Add"} ${display(s.name)} ${on ? "from" : "to"} the shortlist`);
  };
  star.addEventListener("click", () => { shortlist.toggle(entry); paint(); });
  shortlist.painters.push(paint);
  paint();
  return row;
}

// ---- shortlist: starred names, kept in localStorage, downloaded as CSV
const shortlist = {
  key: "namegen-shortlist",
  painters: [],  // stars to repaint when the list changes elsewhere
  load() {
    try { return JSON.parse(localStorage.getItem(this.key)) || []; } catch { return []; }
  },
  save(entries) {
    localStorage.setItem(this.key, JSON.stringify(entries));
    this.refresh();
  },
  refresh() {
    renderShortlist();
    for (const paint of this.painters) paint();
  },
  same(a, b) { return a.name === b.name && a.model === b.model; },
  has(entry) { return this.load().some((e) => this.same(e, entry)); },
  toggle(entry) {
    const entries = this.load();
    const kept = entries.filter((e) => !this.same(e, entry));
    this.save(kept.length === entries.length ? [...entries, entry] : kept);
  },
};

function csvField(value) {
  const text = value === null || value === undefined ? "" : String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

function shortlistCsv(entries) {
  const lines = [["name", "model", "loss", "percentile"], ...entries.map((e) => [e.name, e.model, e.loss, e.percentile])];
  return lines.map((fields) => fields.map(csvField).join(",")).join("\r\n") + "\r\n";
}

function renderShortlist() {
  const entries = shortlist.load();
  $("shortlist-empty").hidden = entries.length > 0;
  $("shortlist-download").disabled = $("shortlist-clear").disabled = entries.length === 0;
  $("shortlist").replaceChildren(...entries.map((e) => {
    const item = document.createElement("li");
    item.dataset.name = e.name;
    item.innerHTML = `<span class="name"></span><span class="muted"></span><button type="button" class="secondary">Remove</button>`;
    item.querySelector(".name").textContent = display(e.name);
    item.querySelector(".muted").textContent = `${e.model}` + (e.percentile === null ? "" : ` · ${nameLike(e.percentile)}`);
    const remove = item.querySelector("button");
    remove.setAttribute("aria-label", `Remove ${display(e.name)} from the shortlist`);
    remove.addEventListener("click", () => shortlist.toggle(e));
    return item;
  }));
}

function downloadShortlist() {
  const url = URL.createObjectURL(new Blob([shortlistCsv(shortlist.load())], {type: "text/csv"}));
  const link = document.createElement("a");
  link.href = url;
  link.download = "namegen-shortlist.csv";
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

// ---- next character
const fetchNext = latest((prefix, given) => api("next-char", given ?
  {model: model(), prefix, constraints: given, max_length: numberOrNull("max-length") ?? 32, seed: 0,
   condition: condition()} :
  {model: model(), prefix, condition: condition()}));

async function nextChar() {
  try {
    const given = constraints();
    const result = await fetchNext($("next-prefix").value, given);
    if (!result) return;
    showError("next-error", null);
    drawChart(result.distribution, models[model()]?.alphabet, result.prefix);
    $("chart").dataset.prefix = result.prefix;
    $("chart").dataset.conditional = result.constraint ? "yes" : "no";
    $("next-note").textContent = result.constraint ?
      `given the constraints: ${result.constraint.method === "exact" ? "exact" : `estimated from ${result.constraint.draws.toLocaleString("en")} weighted particles (ESS ${Math.round(result.constraint.ess)})`}` : "";
  } catch (error) {  // no stale chart under the message
    $("chart").replaceChildren();
    $("chart-table").tBodies[0].replaceChildren();
    $("chart-value").textContent = "";
    $("next-note").textContent = "";
    delete $("chart").dataset.prefix;
    showError("next-error", error);
  }
}

function charLabel(char) { return char === "." ? ". (end)" : char; }

function percent(p) { return `${(100 * p).toFixed(2)} %`; }

function drawChart(distribution, alphabet, prefix) {
  const prob = Object.fromEntries(distribution.map((d) => [d.char, d.prob]));
  const order = alphabet ? [...alphabet] : distribution.map((d) => d.char);
  const top = Math.max(...distribution.map((d) => d.prob));
  const bars = order.map((char) => {
    const p = prob[char];
    const bar = document.createElement("button");  // a button: a tap, a click or the keyboard shows its value
    bar.type = "button";
    bar.className = char === "." ? "bar end" : "bar";
    bar.dataset.char = char;
    bar.dataset.prob = String(p);
    bar.title = `${charLabel(char)}: ${percent(p)}`;
    const show = () => {
      for (const other of $("chart").children) other.classList.toggle("picked", other === bar);
      $("chart-value").textContent = `after "${prefix}": ${charLabel(char)} ${percent(p)}`;
      $("chart-value").dataset.char = char;
    };
    bar.addEventListener("click", show);
    bar.addEventListener("focus", show);
    // its name for a screen reader: the character and the exact probability (the rounded label is decoration)
    bar.innerHTML = `<span class="pct" aria-hidden="true"></span><span class="fill"></span><span class="char"></span>` +
      `<span class="visually-hidden"></span>`;
    bar.querySelector(".visually-hidden").textContent = `${char === "." ? " (end)" : ""}: ${percent(p)}`;
    bar.querySelector(".pct").textContent = p >= 0.01 ? `${Math.round(100 * p)}%` : "";
    bar.querySelector(".fill").style.height = `${(75 * p) / top}%`;  // room above for the % and below for the label
    bar.querySelector(".char").textContent = char;
    return bar;
  });
  $("chart").replaceChildren(...bars);
  $("chart-value").textContent = "Tap, click or focus a bar for its probability.";
  delete $("chart-value").dataset.char;
  $("chart-table").tBodies[0].replaceChildren(...distribution.map((d) => {  // the chart as text
    const row = document.createElement("tr");
    row.innerHTML = "<td></td><td></td>";
    row.cells[0].textContent = charLabel(d.char);
    row.cells[1].textContent = percent(d.prob);
    row.dataset.char = d.char;
    return row;
  }));
}

// ---- score a word
const fetchLoss = latest((word) => api("loss", {model: model(), word, condition: condition()}));
const fetchClass = latest((word) => api("classify", {model: model(), words: [word]}));

// A conditional model also says how likely each gender is for the typed name (POST /classify).
async function classify(word) {
  const line = $("classification");
  if (!models[model()]?.conditions?.gender || !word.trim()) {
    line.hidden = true;
    return;
  }
  const result = await fetchClass(word);
  if (!result) return;
  const p = result.results[0].gender;
  line.dataset.female = String(p.female);
  line.dataset.male = String(p.male);
  line.textContent = `${result.results[0].word}: ` +
    Object.entries(p).map(([value, q]) => `${(100 * q).toFixed(1)}% ${value}`).join(" · ") +
    ` (Bayes over the model's likelihoods, prior ${(100 * result.prior.gender.female).toFixed(0)}% female)`;
  line.hidden = false;
}

// viridis (colour-blind safe, ordered by lightness): dark purple at p <= 0.001 to yellow at p = 1
const VIRIDIS = [[68, 1, 84], [72, 40, 120], [62, 73, 137], [49, 104, 142], [38, 130, 142],
  [31, 158, 137], [53, 183, 121], [110, 206, 88], [181, 222, 43], [253, 231, 37]];

function colour(p) {  // {background, text}: black or white text, whichever contrasts more (>= 4.5:1)
  const t = Math.min(1, Math.max(0, (Math.log10(p) + 3) / 3)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(t));
  const rgb = VIRIDIS[i].map((c, k) => Math.round(c + (VIRIDIS[i + 1][k] - c) * (t - i)));
  const linear = rgb.map((c) => { const s = c / 255; return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4; });
  const luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2];
  return {background: `rgb(${rgb.join(" ")})`, text: luminance > 0.179 ? "#000" : "#fff"};
}

async function score() {
  const word = $("word").value;
  if (!word.trim()) {
    clearScore();
    showError("score-error", null);
    return;
  }
  try {
    const [result] = await Promise.all([fetchLoss(word), classify(word)]);
    if (!result) return;
    showError("score-error", null);
    const cells = result.chars.map((c) => {
      const cell = document.createElement("div");
      cell.className = "cell";
      cell.dataset.char = c.char;
      cell.dataset.prob = String(c.prob);
      const {background, text} = colour(c.prob);
      cell.style.background = background;
      cell.style.color = text;
      cell.title = `p(${c.char}) = ${c.prob.toPrecision(4)}, NLL ${c.nll.toFixed(3)} nats`;
      cell.innerHTML = `<span class="char"></span><span class="p"></span>`;
      cell.querySelector(".char").textContent = c.char;
      cell.querySelector(".p").textContent = c.prob.toFixed(3);
      return cell;
    });
    $("strip").replaceChildren(...cells);
    $("strip").dataset.word = result.word;
    $("word-loss").dataset.loss = String(result.loss);
    $("word-loss").dataset.percentile = String(result.percentile);
    $("word-loss").textContent = `${display(result.word)}: ` +
      (result.percentile === null ? "" : `more name-like than ${nameLike(result.percentile)} of real names · `) +
      `loss ${result.loss.toFixed(4)} nats/char · perplexity ${result.perplexity.toFixed(2)}`;
  } catch (error) {  // no stale score under the message
    clearScore();
    showError("score-error", error);
  }
}

function clearScore() {
  $("strip").replaceChildren();
  delete $("strip").dataset.word;
  $("word-loss").textContent = "";
  $("classification").hidden = true;
}

// ---- wiring
$("sample-form").addEventListener("submit", sample);
$("next-prefix").addEventListener("input", debounce(nextChar, 120));
for (const id of ["ends-with", "contains", "excludes", "length-min", "length-max", "regex", "max-length"]) {
  $(id).addEventListener("input", debounce(nextChar, 300));
}
$("word").addEventListener("input", debounce(score, 120));
$("model").addEventListener("change", () => { describeModel(); nextChar(); score(); });
$("shortlist-download").addEventListener("click", downloadShortlist);
$("shortlist-clear").addEventListener("click", () => shortlist.save([]));
window.addEventListener("storage", (event) => { if (event.key === shortlist.key) shortlist.refresh(); });
renderShortlist();
$("gender").addEventListener("change", () => { nextChar(); score(); });
loadModels().then(nextChar).catch((error) => showError("sample-error", error));
