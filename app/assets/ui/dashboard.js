// The opqueue dashboard: a project's operations, kept live.
//
// Everything shown is fetched from the API with the API key entered in the page, sent as
// `Authorization: Bearer` and kept in this tab's sessionStorage, never in a URL. Live
// changes come from `GET /v1/projects/{p}/operations:watch` (server-sent events), read with
// fetch() and the small parser below rather than EventSource, which cannot send headers;
// like EventSource it remembers the last event id and resumes with `Last-Event-ID`.
// Data reaches the page only as text (textContent, attributes), never as HTML.

// The domain's tables (states, google.rpc codes by number, id patterns) come from the server,
// in the page's "tables" data block, so that they are written in one place (app/ui.py).
const TABLES = JSON.parse(document.getElementById("tables").textContent);
const STATES = TABLES.states;
const CODES = TABLES.codes;
const anchored = (pattern) => new RegExp(`^(?:${pattern})$`);
const PROJECT_ID = anchored(TABLES.patterns.projectId);
const JOB_NAME = anchored(TABLES.patterns.jobName);
const OPERATION_ID = anchored(TABLES.patterns.operationId);
const OPERATION_NAME = anchored(
  `projects/(?:${TABLES.patterns.projectId})/operations/(?:${TABLES.patterns.operationId})`);
const PAGE_SIZE = 50;
const MAX_ROWS = 1000; // past this the oldest rows leave the page
const KEY_STORAGE = "opqueue.apiKey";
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 30000;

const apiRoot = document.body.dataset.apiRoot || "";
const byId = (id) => document.getElementById(id);

const view = {
  project: "demo",
  state: "",
  job: "",
  operations: new Map(), // name → the newest Operation seen, for the rows shown
  deleted: new Set(), // names deleted meanwhile: a listing in flight must not revive them
  nextPageToken: "",
  generation: 0, // bumped by every reload: answers to older requests are dropped
  loading: true, // the first page of this view has not been answered yet
  selected: null, // the name of the operation in the detail panel
  detail: null, // and that operation
  stream: null,
};

// ---- the API ----

class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `the server answered HTTP ${status}`);
    this.status = status;
    this.code = error.status || "";
  }
}

function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE) || "";
}

function headers(extra = {}) {
  const key = apiKey();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : { ...extra };
}

function apiUrl(path, query = {}) {
  const url = new URL(apiRoot + path, window.location.origin);
  for (const [name, value] of Object.entries(query)) {
    if (value) url.searchParams.set(name, value);
  }
  return url;
}

async function call(method, path, query) {
  const init = { method, headers: headers(), cache: "no-store" };
  if (method === "POST") {
    init.headers["Content-Type"] = "application/json";
    init.body = "{}";
  }
  const response = await fetch(apiUrl(path, query), init);
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

function projectPath() {
  return `/v1/projects/${encodeURIComponent(view.project)}`;
}

function filterString() {
  const terms = [];
  if (view.state) terms.push(`metadata.state = ${view.state}`);
  if (view.job) terms.push(`metadata.job = "${view.job}"`);
  return terms.join(" AND ");
}

function matchesFilter(operation) {
  const metadata = operation.metadata || {};
  return (!view.state || metadata.state === view.state)
    && (!view.job || metadata.job === view.job);
}

// ---- server-sent events over fetch ----

// Reads one `text/event-stream` response as the HTML standard parses it: calls
// stream.onEvent(type, data) per event, keeps stream.lastEventId and stream.retryMs, and
// calls onChunk() for every piece received (keep-alive comments too).
async function readEvents(response, stream, onChunk) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let type = "";
  let data = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    onChunk();
    buffer += value;
    let end;
    // A line ends at \r\n, \n or \r; a final \r may be half of a \r\n still on its way.
    while ((end = buffer.search(/\r\n|\r(?!$)|\n/)) >= 0) {
      const line = buffer.slice(0, end);
      buffer = buffer.slice(buffer.startsWith("\r\n", end) ? end + 2 : end + 1);
      if (line === "") {
        if (data.length) stream.onEvent(type || "message", data.join("\n"));
        type = "";
        data = [];
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let fieldValue = colon < 0 ? "" : line.slice(colon + 1);
      if (fieldValue.startsWith(" ")) fieldValue = fieldValue.slice(1);
      if (field === "event") type = fieldValue;
      else if (field === "data") data.push(fieldValue);
      else if (field === "id" && !fieldValue.includes("\0")) stream.lastEventId = fieldValue;
      else if (field === "retry" && /^\d+$/.test(fieldValue)) stream.retryMs = Number(fieldValue);
    }
  }
}

// One project's change stream: reconnects by itself, resuming after the last event seen.
class WatchStream {
  constructor(project, { onEvent, onStatus, onFresh }) {
    this.project = project;
    this.onEvent = onEvent;
    this.onStatus = onStatus;
    this.onFresh = onFresh;
    this.lastEventId = "";
    this.retryMs = 500;
    this.backoffMs = RETRY_MIN_MS;
    this.controller = null;
    this.timer = null;
    this.stopped = false;
  }

  start() {
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.controller) this.controller.abort();
  }

  reconnectIn(ms) {
    if (this.stopped) return;
    this.onStatus("reconnecting", `reconnecting in ${Math.round(ms / 1000)} s`);
    this.timer = setTimeout(() => this.connect(), ms);
  }

  async connect() {
    if (this.stopped) return;
    this.controller = new AbortController();
    const sent = headers({ Accept: "text/event-stream" });
    if (this.lastEventId) sent["Last-Event-ID"] = this.lastEventId;
    const resumed = Boolean(this.lastEventId);
    const url = apiUrl(`/v1/projects/${encodeURIComponent(this.project)}/operations:watch`);
    try {
      const response = await fetch(url, {
        headers: sent, cache: "no-store", signal: this.controller.signal,
      });
      if (!response.ok) {
        const error = new ApiError(response.status, await response.json().catch(() => null));
        if (response.status === 400 && resumed) {
          this.lastEventId = ""; // the resume point is gone: start afresh (and re-list)
          this.reconnectIn(0);
        } else if (response.status === 401 || response.status === 403) {
          this.onStatus("refused", error.message, error); // a retry would not help
        } else {
          this.onStatus("error", error.message, error);
          this.backoff();
        }
        return;
      }
      let first = true;
      await readEvents(response, this, () => {
        this.backoffMs = RETRY_MIN_MS;
        if (!first) return;
        first = false;
        this.onStatus("live", "live");
        // A fresh stream starts after the newest change when the server begins it, which
        // the page learns only from its first bytes (a change, or a keep-alive within
        // 15 s); a change between the listing and that start would be missed: list again.
        if (!resumed) this.onFresh();
      });
      this.reconnectIn(this.retryMs); // the server ends a stream after a while: resume it
    } catch (error) {
      if (this.stopped) return;
      this.onStatus("error", "connection lost");
      this.backoff();
    }
  }

  backoff() {
    const ms = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, RETRY_MAX_MS);
    this.reconnectIn(ms);
  }
}

// ---- time ----

// RFC 3339 with 0 to 9 fractional digits → a string that sorts in time order.
function timeKey(text) {
  const match = /^(.*?)(?:\.(\d+))?Z$/.exec(text || "");
  return match ? `${match[1]}.${(match[2] || "").padEnd(9, "0")}` : "";
}

function millis(text) {
  return Date.parse((text || "").replace(/(\.\d{3})\d+Z$/, "$1Z"));
}

function age(createTime, now) {
  const seconds = Math.max(0, Math.floor((now - millis(createTime)) / 1000));
  if (!Number.isFinite(seconds)) return "";
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m ${seconds % 60}s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${hours}h ${minutes % 60}m`;
  return `${Math.floor(hours / 24)}d ${hours % 24}h`;
}

// ---- rendering (text only) ----

function element(tag, { text, className, attributes } = {}, children = []) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = String(text);
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

function operationId(name) {
  return name.slice(name.lastIndexOf("/") + 1);
}

function progressOf(metadata) {
  const percent = Number(metadata.progressPercent || 0);
  return Math.min(100, Math.max(0, Number.isFinite(percent) ? Math.round(percent) : 0));
}

function buildRow(name) {
  const id = operationId(name);
  const open = element("button", {
    text: id.slice(0, 8), className: "link open", attributes: { type: "button", title: name },
  });
  open.addEventListener("click", () => select(name));
  const cancel = element("button", {
    text: "Cancel", className: "cancel", attributes: { type: "button" },
  });
  cancel.addEventListener("click", () => cancelOperation(name, cancel));
  const bar = element("progress", { attributes: { max: "100", value: "0" } });
  return element("tr", { attributes: { "data-name": name } }, [
    element("td", { className: "id" }, [open]),
    element("td", { className: "job" }),
    element("td", {}, [element("span", { className: "state" })]),
    element("td", { className: "progress" }, [bar, element("span", { className: "percent" })]),
    element("td", { className: "message" }),
    element("td", { className: "age" }),
    element("td", { className: "actions" }, [cancel]),
  ]);
}

function fillRow(row, operation) {
  const metadata = operation.metadata || {};
  const percent = progressOf(metadata);
  const state = STATES.includes(metadata.state) ? metadata.state : "";
  row.dataset.state = state;
  row.dataset.created = timeKey(metadata.createTime);
  row.querySelector(".job").textContent = metadata.job || "";
  const badge = row.querySelector(".state");
  badge.textContent = state;
  badge.dataset.state = state;
  const bar = row.querySelector("progress");
  bar.setAttribute("value", String(percent));
  bar.setAttribute("aria-label", `${percent}% done`);
  row.querySelector(".percent").textContent = `${percent}%`;
  // A failure says why; otherwise the job's own last word.
  const error = operation.error && state === "FAILED" ? operation.error.message : "";
  const message = row.querySelector(".message");
  message.textContent = error || metadata.statusMessage || "";
  message.title = message.textContent;
  const ageCell = row.querySelector(".age");
  ageCell.dataset.createTime = metadata.createTime || "";
  ageCell.title = metadata.createTime || "";
  ageCell.textContent = age(metadata.createTime, Date.now());
  const cancel = row.querySelector(".cancel");
  cancel.hidden = Boolean(operation.done) || state === "CANCELLING";
  row.classList.toggle("selected", view.selected === operation.name);
}

function rowFor(name) {
  for (const row of byId("rows").children) if (row.dataset.name === name) return row;
  return null;
}

function placeRow(row) {
  // Newest first, by createTime.
  const rows = byId("rows");
  for (const other of rows.children) {
    if (other !== row && other.dataset.created < row.dataset.created) {
      if (row.nextSibling !== other) rows.insertBefore(row, other);
      return;
    }
  }
  if (row.parentNode !== rows || rows.lastElementChild !== row) rows.append(row);
}

function showCount() {
  const count = view.operations.size;
  byId("loading").hidden = !view.loading;
  byId("empty").hidden = count > 0 || view.loading;
  byId("count").textContent = `${count} shown`;
  byId("more").hidden = !view.nextPageToken;
}

function notice(text) {
  const box = byId("notice");
  box.textContent = text || "";
  box.hidden = !text;
}

function pretty(value) {
  return JSON.stringify(value, null, 2);
}

function renderDetail(operation) {
  view.detail = operation;
  const metadata = operation.metadata || {};
  byId("detail").hidden = false;
  byId("detail-title").textContent = `${metadata.job || "Operation"} · ${metadata.state || ""}`;
  byId("detail-name").textContent = operation.name;
  const labels = Object.entries(metadata.labels || {}).map(([k, v]) => `${k}=${v}`).join(", ");
  const fields = [
    ["State", metadata.state],
    ["Job", metadata.job],
    ["Progress", `${progressOf(metadata)}%`],
    ["Status", metadata.statusMessage],
    ["Created", metadata.createTime],
    ["Started", metadata.startTime],
    ["Updated", metadata.updateTime],
    ["Ended", metadata.endTime],
    ["Attempt", metadata.attempt],
    ["Worker", metadata.worker],
    ["Cancel asked", metadata.requestedCancellation ? "yes" : ""],
    ["Labels", labels],
  ];
  byId("detail-fields").replaceChildren(...fields
    .filter(([, value]) => value !== undefined && value !== "")
    .flatMap(([term, value]) => [
      element("dt", { text: term }),
      element("dd", { text: value, attributes: term === "State" ? { "data-state": value } : {} }),
    ]));
  const error = operation.error;
  byId("detail-error").hidden = !error;
  if (error) {
    const code = CODES[error.code] || `code ${error.code}`;
    byId("detail-error-summary").textContent = `${code} (${error.code}): ${error.message || ""}`;
    byId("detail-error-details").textContent = pretty(error.details || []);
  }
  const response = operation.response;
  byId("detail-response").hidden = !response;
  if (response) byId("detail-response-value").textContent = pretty(response.value);
  const details = metadata.details;
  const hasDetails = details && Object.keys(details).length > 0;
  byId("detail-progress-details").hidden = !hasDetails;
  if (hasDetails) byId("detail-details-value").textContent = pretty(details);
  byId("detail-metadata").textContent = pretty(metadata);
  const cancel = byId("detail-cancel");
  cancel.hidden = Boolean(operation.done) || metadata.state === "CANCELLING";
  cancel.disabled = false;
  cancel.textContent = "Cancel operation";
}

function showDeletedDetail(name) {
  byId("detail-title").textContent = "Deleted";
  byId("detail-name").textContent = name;
  byId("detail-cancel").hidden = true;
}

// ---- the model ----

function newer(incoming, shown) {
  return !shown || timeKey(incoming.metadata && incoming.metadata.updateTime)
    >= timeKey(shown.metadata && shown.metadata.updateTime);
}

// Takes in an operation from a listing or the stream; the newest copy of each one wins.
function upsert(operation, { fromStream = false } = {}) {
  if (!operation || !OPERATION_NAME.test(operation.name || "")) return;
  const { name } = operation;
  if (view.selected === name && newer(operation, view.detail)) renderDetail(operation);
  if (!fromStream && view.deleted.has(name)) return;
  const shown = view.operations.get(name);
  if (!newer(operation, shown)) return;
  if (!matchesFilter(operation)) {
    if (shown) removeRow(name);
    return;
  }
  if (!shown && fromStream && view.nextPageToken && view.operations.size) {
    // Older than every row shown while more pages wait: "Load more" will bring it.
    const oldest = byId("rows").lastElementChild;
    if (oldest && timeKey(operation.metadata.createTime) < oldest.dataset.created) return;
  }
  view.operations.set(name, operation);
  const row = rowFor(name) || buildRow(name);
  fillRow(row, operation);
  placeRow(row);
  while (view.operations.size > MAX_ROWS) {
    const oldest = byId("rows").lastElementChild;
    removeRow(oldest.dataset.name);
    view.nextPageToken = ""; // the page token no longer follows on from the last row
  }
  showCount();
}

function removeRow(name) {
  view.operations.delete(name);
  const row = rowFor(name);
  if (row) row.remove();
  showCount();
}

function forget(name) {
  view.deleted.add(name);
  removeRow(name);
  if (view.selected === name) showDeletedDetail(name);
}

function onStreamEvent(type, data) {
  let payload;
  try {
    payload = JSON.parse(data);
  } catch {
    return;
  }
  if (type === "delete" || (payload && payload.deleted)) {
    if (payload && OPERATION_NAME.test(payload.name || "")) forget(payload.name);
    return;
  }
  upsert(payload, { fromStream: true });
}

function explain(error) {
  if (error.status === 401) {
    byId("api-key").focus();
    return `This server needs an API key: enter one above. (${error.message})`;
  }
  return error.message;
}

// The first page (again, when `resync`: rows already shown stay, the newest copy wins), or
// with `more` the page after the last one listed.
async function list({ more = false, resync = false } = {}) {
  const { generation } = view;
  const query = { filter: filterString(), pageSize: String(PAGE_SIZE) };
  if (more) query.pageToken = view.nextPageToken;
  try {
    const page = await call("GET", `${projectPath()}/operations`, query);
    if (generation !== view.generation) return;
    if (!resync && (!more || view.nextPageToken)) view.nextPageToken = page.nextPageToken || "";
    for (const operation of page.operations || []) upsert(operation);
    view.loading = false;
    showCount();
    notice("");
  } catch (error) {
    if (generation === view.generation) {
      view.loading = false;
      showCount();
      notice(explain(error));
    }
  }
}

function reload() {
  view.generation += 1;
  view.operations.clear();
  view.deleted.clear();
  view.nextPageToken = "";
  byId("rows").replaceChildren();
  view.loading = true;
  showCount();
  return list();
}

async function loadJobs() {
  const select = byId("job-filter");
  let names = [];
  try {
    names = ((await call("GET", "/v1/jobs")).jobs || []).map((job) => job.name)
      .filter((name) => JOB_NAME.test(name));
  } catch {
    // Without a key the list stays short; the listing says why.
  }
  if (view.job && !names.includes(view.job)) names.push(view.job);
  select.replaceChildren(element("option", { text: "any", attributes: { value: "" } }),
    ...names.sort().map((name) => element("option", { text: name, attributes: { value: name } })));
  select.value = view.job;
}

async function select(name) {
  if (!OPERATION_NAME.test(name)) return;
  view.selected = name;
  view.detail = null;
  for (const row of byId("rows").children) {
    row.classList.toggle("selected", row.dataset.name === name);
  }
  saveLocation();
  const known = view.operations.get(name);
  if (known) renderDetail(known);
  try {
    const operation = await call("GET", `/v1/${name}`);
    if (view.selected === name && newer(operation, view.detail)) renderDetail(operation);
  } catch (error) {
    if (view.selected !== name) return;
    if (error.status === 404) showDeletedDetail(name);
    else notice(explain(error));
  }
}

function closeDetail() {
  view.selected = null;
  view.detail = null;
  byId("detail").hidden = true;
  for (const row of byId("rows").children) row.classList.remove("selected");
  saveLocation();
}

async function cancelOperation(name, button) {
  button.disabled = true;
  const label = button.textContent;
  button.textContent = "Cancelling…";
  try {
    await call("POST", `/v1/${name}:cancel`);
    upsert(await call("GET", `/v1/${name}`), { fromStream: true });
  } catch (error) {
    notice(`Could not cancel ${operationId(name)}: ${explain(error)}`);
  } finally {
    button.disabled = false;
    button.textContent = label;
  }
}

// ---- connection status ----

function setStatus(status, text) {
  const badge = byId("connection");
  badge.dataset.status = status;
  badge.textContent = text;
}

function onStreamStatus(status, text, error) {
  setStatus(status, status === "refused" ? "not connected" : text);
  if (error && status === "refused") notice(explain(error));
}

function watch() {
  if (view.stream) view.stream.stop();
  setStatus("connecting", "connecting");
  view.stream = new WatchStream(view.project, {
    onEvent: onStreamEvent,
    onStatus: onStreamStatus,
    onFresh: () => list({ resync: true }),
  });
  view.stream.start();
}

// ---- the page's own address: project, filters, selection (never the key) ----

function readLocation() {
  const params = new URLSearchParams(window.location.search);
  const project = params.get("project") || "demo";
  view.project = PROJECT_ID.test(project) ? project : "demo";
  const state = params.get("state") || "";
  view.state = STATES.includes(state) ? state : "";
  const job = params.get("job") || "";
  view.job = JOB_NAME.test(job) ? job : "";
  const operation = params.get("operation") || "";
  return OPERATION_ID.test(operation) ? `projects/${view.project}/operations/${operation}` : null;
}

function saveLocation() {
  const params = new URLSearchParams();
  params.set("project", view.project);
  if (view.state) params.set("state", view.state);
  if (view.job) params.set("job", view.job);
  if (view.selected) params.set("operation", operationId(view.selected));
  window.history.replaceState(null, "", `${window.location.pathname}?${params}`);
}

// ---- wiring ----

function showKeyState() {
  const key = apiKey();
  const input = byId("api-key");
  input.value = "";
  input.placeholder = key ? "set for this tab" : "optional";
  byId("forget-key").hidden = !key;
}

function restart() {
  notice("");
  watch();
  reload();
  loadJobs();
}

function openProject(project) {
  view.project = project;
  closeDetail();
  saveLocation();
  document.title = `opqueue · ${project}`;
  restart();
}

function wire() {
  const projectInput = byId("project");
  projectInput.value = view.project;
  byId("project-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const project = projectInput.value.trim();
    if (PROJECT_ID.test(project)) openProject(project);
    else notice("A project id is 1-63 lowercase letters, digits and hyphens, starting with a letter.");
  });
  byId("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = byId("api-key").value.trim();
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    showKeyState();
    restart();
  });
  byId("forget-key").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORAGE);
    showKeyState();
    restart();
  });
  byId("filters").addEventListener("submit", (event) => event.preventDefault());
  const stateSelect = byId("state-filter");
  stateSelect.value = view.state;
  stateSelect.addEventListener("change", () => {
    view.state = STATES.includes(stateSelect.value) ? stateSelect.value : "";
    saveLocation();
    reload();
  });
  const jobSelect = byId("job-filter");
  jobSelect.addEventListener("change", () => {
    view.job = JOB_NAME.test(jobSelect.value) ? jobSelect.value : "";
    saveLocation();
    reload();
  });
  byId("reload").addEventListener("click", () => reload());
  byId("more").addEventListener("click", () => list({ more: true }));
  byId("detail-close").addEventListener("click", closeDetail);
  const detailCancel = byId("detail-cancel");
  detailCancel.addEventListener("click", () => {
    if (view.selected) cancelOperation(view.selected, detailCancel);
  });
  setInterval(() => {
    const now = Date.now();
    for (const cell of document.querySelectorAll("#rows .age")) {
      cell.textContent = age(cell.dataset.createTime, now);
    }
  }, 1000);
}

function main() {
  const selected = readLocation();
  document.title = `opqueue · ${view.project}`;
  wire();
  showKeyState();
  saveLocation();
  restart();
  if (selected) select(selected);
}

main();
