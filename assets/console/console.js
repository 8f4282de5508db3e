// Tasker console: queues, tasks and their details, read and acted on through
// the public API with the operator's token. Plain JS, no build step. Every
// value from the API is written as text (textContent), never as markup.
"use strict";

(() => {
  const TOKEN_KEY = "tasker.console.token";
  const REFRESH_MS = 5000;
  const PAGE_SIZE = 50;
  const FILTERS = ["status", "task_name", "queue", "tenant"];
  const CANCELLABLE = ["pending", "running"];
  const RETRYABLE = ["failed", "cancelled"];

  const $ = (id) => document.getElementById(id);

  const state = {
    filter: { status: "", task_name: "", queue: "", tenant: "" },
    cursors: [null], // the cursor of every page seen; the last is shown
    nextCursor: null,
    taskId: null, // the task open in the detail dialog
    submission: null, // how that task was submitted, once read
    generation: 0, // a refresh answered after a newer one started is dropped
    authNeeded: false,
    bulkAction: null,
    noticeTimer: null,
    taskNames: new Set(),
  };

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  // ---- the API -----------------------------------------------------------

  function storedToken() {
    try {
      return sessionStorage.getItem(TOKEN_KEY);
    } catch {
      return null;
    }
  }

  function messageOf(body, fallback) {
    const message = body && body.error && body.error.message;
    return typeof message === "string" && message ? message : fallback;
  }

  // Paths are relative ("tasks", not "/tasks"): the page lives at
  // <base>/console, so the calls go to <base>/tasks, also under a prefix.
  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    const token = storedToken();
    if (token) headers.Authorization = "Bearer " + token;
    const init = { method, headers, cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      throw new ApiError(0, "network", "the service did not answer (" + err.message + ")");
    }
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (response.status === 401) {
      askForToken(messageOf(data, "a token is needed"), Boolean(token));
    }
    if (!response.ok) {
      const code = (data && data.error && data.error.code) || "http_" + response.status;
      throw new ApiError(response.status, code, messageOf(data, "HTTP " + response.status));
    }
    return data;
  }

  // ---- small helpers -----------------------------------------------------

  // An element with properties and children; strings become text nodes.
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null) continue;
      if (key.startsWith("aria-") || key.startsWith("data-")) node.setAttribute(key, value);
      else node[key] = value;
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  // "2026-11-29T12:00:00.004000Z" → "2026-11-29 12:00:00"
  function shortTime(iso) {
    if (!iso) return "—";
    return String(iso).replace("T", " ").replace(/\.\d+/, "").replace(/Z$/, "");
  }

  function age(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    if (seconds < 60) return seconds.toFixed(1) + " s";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min " + Math.round(seconds % 60) + " s";
    if (seconds < 172800) return (seconds / 3600).toFixed(1) + " h";
    return (seconds / 86400).toFixed(1) + " days";
  }

  function statusPill(status) {
    return el("span", { className: "status status-" + status }, String(status));
  }

  function utcClock() {
    return new Date().toISOString().slice(11, 19) + " UTC";
  }

  function notice(text, isError, source) {
    const box = $("notice");
    clearTimeout(state.noticeTimer);
    box.textContent = text;
    box.className = isError ? "notice error" : "notice";
    box.setAttribute("role", isError ? "alert" : "status");
    box.dataset.source = source || "action";
    box.hidden = false;
    if (!isError) state.noticeTimer = setTimeout(() => (box.hidden = true), 8000);
  }

  function clearNotice(source) {
    const box = $("notice");
    if (!source || box.dataset.source === source) box.hidden = true;
  }

  function plural(n, word) {
    return n + " " + word + (n === 1 ? "" : "s");
  }

  // ---- the token ---------------------------------------------------------

  function askForToken(message, refused) {
    state.authNeeded = true;
    $("token-panel").hidden = false;
    $("forget").hidden = !storedToken();
    // The panel says why it is there; a refused token is worth an error.
    if (refused) notice("The token was refused: " + message, true, "auth");
    else clearNotice("refresh");
    if (!$("detail").open && !$("confirm").open) $("token-input").focus();
  }

  function useToken(event) {
    event.preventDefault();
    const token = $("token-input").value.trim();
    if (!token) return;
    try {
      sessionStorage.setItem(TOKEN_KEY, token);
    } catch {
      notice("This browser does not allow session storage; the token cannot be kept.", true);
      return;
    }
    $("token-input").value = "";
    $("token-panel").hidden = true;
    $("forget").hidden = false;
    state.authNeeded = false;
    clearNotice("auth");
    refresh();
  }

  function forgetToken() {
    try {
      sessionStorage.removeItem(TOKEN_KEY);
    } catch {
      // nothing was kept
    }
    $("forget").hidden = true;
    $("queues").tBodies[0].replaceChildren();
    $("tasks").tBodies[0].replaceChildren();
    if ($("detail").open) $("detail").close();
    notice("Token forgotten.", false);
    state.authNeeded = false;
    refresh();
  }

  // ---- the view's state in the URL ---------------------------------------

  function readHash() {
    const params = new URLSearchParams(location.hash.slice(1));
    for (const name of FILTERS) {
      state.filter[name] = params.get(name) || "";
      $("f-" + name).value = state.filter[name];
    }
    return params.get("task");
  }

  function hashFor(taskId) {
    const params = new URLSearchParams();
    for (const name of FILTERS) if (state.filter[name]) params.set(name, state.filter[name]);
    if (taskId) params.set("task", taskId);
    const text = params.toString();
    return text ? "#" + text : "";
  }

  function writeHash() {
    history.replaceState(null, "", location.pathname + location.search + hashFor(state.taskId));
  }

  // ---- queues ------------------------------------------------------------

  async function loadQueues(generation) {
    let answer;
    try {
      answer = await api("GET", "queues");
    } catch (err) {
      if (err.status === 403 && generation === state.generation) {
        $("queues").tBodies[0].replaceChildren();
        $("queues-note").textContent = "Queues need an admin key: " + err.message;
        $("queues-note").hidden = false;
        return;
      }
      throw err;
    }
    if (generation !== state.generation) return;
    $("queues-note").hidden = true;
    renderQueues(answer.queues || []);
  }

  function renderQueues(queues) {
    const rows = queues.map((queue) => {
      const show = el(
        "a",
        { href: "#queue=" + encodeURIComponent(queue.name), title: "Show this queue's tasks" },
        queue.name,
      );
      show.addEventListener("click", (event) => {
        event.preventDefault();
        setFilter({ status: "", task_name: "", queue: queue.name, tenant: state.filter.tenant });
      });
      const action = queue.paused ? "resume" : "pause";
      const button = el(
        "button",
        {
          type: "button",
          className: queue.paused ? "" : "danger",
          "aria-label": (queue.paused ? "Resume" : "Pause") + " queue " + queue.name,
          "data-queue": queue.name,
          "data-action": action,
        },
        queue.paused ? "Resume" : "Pause",
      );
      button.addEventListener("click", () => queueAction(button, queue.name, action));
      const depth = queue.depth === null || queue.depth === undefined ? "?" : String(queue.depth);
      const stateCell = queue.paused
        ? el(
            "td",
            {},
            el("span", { className: "paused" }, "paused"),
            queue.paused_at
              ? el("span", { className: "muted small" }, " since " + shortTime(queue.paused_at))
              : null,
          )
        : el("td", {}, "active");
      return el(
        "tr",
        { "data-queue": queue.name },
        el("td", {}, show),
        el("td", { className: "num", title: depth === "?" ? "Redis cannot be read" : "" }, depth),
        el("td", { className: "num" }, age(queue.oldest_age_seconds)),
        el("td", { className: "num" }, String(queue.running)),
        stateCell,
        el("td", {}, button),
      );
    });
    $("queues").tBodies[0].replaceChildren(...rows);
    $("queue-names").replaceChildren(...queues.map((q) => el("option", { value: q.name })));
  }

  async function queueAction(button, name, action) {
    button.disabled = true;
    try {
      await api("POST", "queues/" + encodeURIComponent(name) + "/" + action);
      notice(
        "Queue " +
          name +
          (action === "pause" ? " paused: workers take none of its tasks." : " resumed."),
        false,
      );
    } catch (err) {
      notice("Could not " + action + " queue " + name + ": " + err.message, true);
    }
    await refresh();
  }

  // ---- tasks -------------------------------------------------------------

  async function loadTasks(generation) {
    const params = new URLSearchParams();
    for (const name of FILTERS) if (state.filter[name]) params.set(name, state.filter[name]);
    params.set("limit", String(PAGE_SIZE));
    const cursor = state.cursors[state.cursors.length - 1];
    if (cursor) params.set("cursor", cursor);
    const page = await api("GET", "tasks?" + params.toString());
    if (generation !== state.generation) return;
    state.nextCursor = page.next_cursor || null;
    renderTasks(page.tasks || []);
  }

  function renderTasks(tasks) {
    const rows = tasks.map((task) => {
      const id = task.task_uuid;
      const link = el(
        "a",
        { href: hashFor(id) || "#", className: "mono", title: "Open task " + id },
        id,
      );
      link.addEventListener("click", (event) => {
        event.preventDefault();
        openDetail(id);
      });
      if (task.task_name) state.taskNames.add(task.task_name);
      return el(
        "tr",
        { "data-task": id, className: id === state.taskId ? "selected" : "" },
        el("td", {}, link),
        el("td", {}, String(task.task_name)),
        el("td", {}, statusPill(task.status)),
        el("td", {}, String(task.tenant)),
        el("td", { className: "num" }, task.attempts + " / " + task.max_attempts),
        el("td", {}, shortTime(task.created_at)),
        el("td", {}, shortTime(task.completed_at)),
      );
    });
    $("tasks").tBodies[0].replaceChildren(...rows);
    $("tasks-empty").hidden = rows.length > 0;
    $("task-names").replaceChildren(
      ...[...state.taskNames].sort().map((name) => el("option", { value: name })),
    );
    $("prev").disabled = state.cursors.length <= 1;
    $("next").disabled = !state.nextCursor;
    $("page").textContent = "Page " + state.cursors.length;
  }

  function setFilter(filter) {
    state.filter = filter;
    for (const name of FILTERS) $("f-" + name).value = filter[name];
    state.cursors = [null];
    writeHash();
    updateBulkButtons();
    refresh();
  }

  function applyFilters(event) {
    if (event) event.preventDefault();
    const filter = {};
    for (const name of FILTERS) filter[name] = $("f-" + name).value.trim();
    setFilter(filter);
  }

  function clearFilters() {
    setFilter({ status: "", task_name: "", queue: "", tenant: "" });
  }

  function olderPage() {
    if (!state.nextCursor) return;
    state.cursors.push(state.nextCursor);
    refresh();
  }

  function newerPage() {
    if (state.cursors.length <= 1) return;
    state.cursors.pop();
    refresh();
  }

  // ---- one task ----------------------------------------------------------

  const DETAIL_FIELDS = [
    ["task_uuid", "Task id"],
    ["task_name", "Name"],
    ["status", "Status"],
    ["tenant", "Tenant"],
    ["queue", "Queue"],
    ["attempts", "Attempts"],
    ["created_at", "Created"],
    ["started_at", "Started (latest attempt)"],
    ["completed_at", "Finished"],
    ["next_attempt_at", "Next attempt"],
    ["request_id", "Request id"],
    ["trace_id", "Trace id"],
    ["task_parameters", "Parameters"],
    ["task_output", "Output"],
    ["error", "Error"],
  ];
  const SHOWN_ELSEWHERE = new Set(["max_attempts"]);

  function json(value) {
    return el("pre", {}, JSON.stringify(value, null, 2));
  }

  function fieldValue(key, task) {
    const value = task[key];
    switch (key) {
      case "status":
        return statusPill(value);
      case "attempts":
        return task.attempts + " of at most " + task.max_attempts;
      case "task_uuid":
      case "request_id":
      case "trace_id":
        return value === null ? "—" : el("span", { className: "mono" }, String(value));
      case "created_at":
      case "started_at":
      case "completed_at":
      case "next_attempt_at":
        return value ? String(value) : "—";
      case "error":
        return value === null ? "none" : el("pre", {}, String(value));
      case "task_output":
        return value === null ? (task.status === "completed" ? "null" : "none yet") : json(value);
      default:
        return value !== null && typeof value === "object" ? json(value) : String(value);
    }
  }

  function renderDetail(task) {
    $("detail-title").textContent = "Task " + task.task_uuid;
    const known = new Set(DETAIL_FIELDS.map(([key]) => key));
    // The fields the console knows, then any other the API adds.
    const fields = DETAIL_FIELDS.filter(([key]) => key in task).concat(
      Object.keys(task)
        .filter((key) => !known.has(key) && !SHOWN_ELSEWHERE.has(key))
        .map((key) => [key, key]),
    );
    const items = [];
    for (const [key, label] of fields) {
      items.push(el("dt", {}, label), el("dd", { "data-field": key }, fieldValue(key, task)));
    }
    $("detail-fields").replaceChildren(...items);
    $("detail").dataset.status = task.status;
    $("detail-cancel").disabled = !CANCELLABLE.includes(task.status);
    $("detail-retry").disabled = !RETRYABLE.includes(task.status);
  }

  function withSubmission(task, submission) {
    if (!submission) return task;
    return Object.assign({}, task, {
      queue: submission.queue,
      request_id: submission.request_id,
      trace_id: submission.trace_id,
      task_parameters: submission.parameters,
    });
  }

  async function loadDetail(generation) {
    const id = state.taskId;
    if (!id) return;
    try {
      // The task and, beside it, how it was submitted (parameters, queue,
      // request and trace), which the task resource leaves out.
      const [task, submission] = await Promise.all([
        api("GET", "tasks/" + encodeURIComponent(id)),
        api("GET", "tasks/" + encodeURIComponent(id) + "/submission").catch(() => null),
      ]);
      if (generation !== state.generation || id !== state.taskId) return;
      $("detail-error").hidden = true;
      state.submission = submission;
      renderDetail(withSubmission(task, submission));
    } catch (err) {
      if (id !== state.taskId) return;
      $("detail-error").textContent = err.message;
      $("detail-error").hidden = false;
    }
  }

  function openDetail(id) {
    state.taskId = id;
    state.submission = null;
    writeHash();
    $("detail-title").textContent = "Task " + id;
    $("detail-fields").replaceChildren(el("dd", { className: "muted" }, "Loading…"));
    $("detail-error").hidden = true;
    $("detail-cancel").disabled = true;
    $("detail-retry").disabled = true;
    for (const row of $("tasks").tBodies[0].rows)
      row.classList.toggle("selected", row.dataset.task === id);
    if (!$("detail").open) $("detail").showModal();
    $("detail-close").focus();
    loadDetail(state.generation);
  }

  function detailClosed() {
    const id = state.taskId;
    state.taskId = null;
    writeHash();
    for (const row of $("tasks").tBodies[0].rows) row.classList.remove("selected");
    const link = id && document.querySelector('#tasks tr[data-task="' + CSS.escape(id) + '"] a');
    if (link) link.focus();
  }

  async function taskAction(action) {
    const id = state.taskId;
    if (!id) return;
    $("detail-cancel").disabled = true;
    $("detail-retry").disabled = true;
    try {
      const task = await api("POST", "tasks/" + encodeURIComponent(id) + "/" + action);
      $("detail-error").hidden = true;
      if (id === state.taskId) renderDetail(withSubmission(task, state.submission));
      notice(
        action === "cancel" ? "Task " + id + " cancelled." : "Task " + id + " is pending again.",
        false,
      );
    } catch (err) {
      $("detail-error").textContent = "Could not " + action + " the task: " + err.message;
      $("detail-error").hidden = false;
    }
    await refresh();
  }

  // ---- every match of the filter -----------------------------------------

  function bulkBody() {
    const body = {};
    for (const name of FILTERS) if (state.filter[name]) body[name] = state.filter[name];
    return Object.keys(body).length ? body : { all: true };
  }

  function describeFilter() {
    const parts = [];
    if (state.filter.status) parts.push("status " + state.filter.status);
    if (state.filter.task_name) parts.push("task name " + state.filter.task_name);
    if (state.filter.queue) parts.push("queue " + state.filter.queue);
    if (state.filter.tenant) parts.push("tenant " + state.filter.tenant);
    return parts.join(", ");
  }

  function updateBulkButtons() {
    const status = state.filter.status;
    const cancel = $("bulk-cancel");
    const retry = $("bulk-retry");
    cancel.disabled = Boolean(status) && !CANCELLABLE.includes(status);
    retry.disabled = Boolean(status) && !RETRYABLE.includes(status);
    cancel.title = cancel.disabled ? "Only pending or running tasks can be cancelled" : "";
    retry.title = retry.disabled ? "Only failed or cancelled tasks can be retried" : "";
  }

  function confirmBulk(action) {
    const filter = describeFilter();
    const scope = filter ? "matching " + filter : "in every queue and tenant (no filter is set)";
    const text =
      action === "cancel"
        ? "Cancel every pending or running task " +
          scope +
          ", not only those on this page? Pending tasks will never start; running ones are stopped. This cannot be undone."
        : "Retry every failed or cancelled task " +
          scope +
          ", not only those on this page? They go back to pending with a fresh attempt budget.";
    state.bulkAction = action;
    $("confirm-title").textContent =
      action === "cancel" ? "Cancel all matching tasks?" : "Retry all matching tasks?";
    $("confirm-text").textContent = text;
    $("confirm-yes").textContent = action === "cancel" ? "Yes, cancel them" : "Yes, retry them";
    $("confirm-yes").className = action === "cancel" ? "danger" : "primary";
    $("confirm").dataset.action = action;
    $("confirm").showModal();
    $("confirm-no").focus();
  }

  async function runBulk() {
    const action = state.bulkAction;
    $("confirm").close();
    if (!action) return;
    state.bulkAction = null;
    try {
      const answer = await api("POST", "tasks/" + action, bulkBody());
      notice(
        action === "cancel"
          ? plural(answer.cancelled, "task") + " cancelled."
          : plural(answer.retried, "task") + " put back to pending.",
        false,
      );
    } catch (err) {
      notice("Could not " + action + " the matching tasks: " + err.message, true);
    }
    await refresh();
  }

  // ---- refreshing --------------------------------------------------------

  async function refresh() {
    if (state.authNeeded) return;
    const generation = ++state.generation;
    $("refresh").disabled = true;
    const results = await Promise.allSettled([
      loadQueues(generation),
      loadTasks(generation),
      loadDetail(generation),
    ]);
    if (generation !== state.generation) return;
    $("refresh").disabled = false;
    const failed = results.find((r) => r.status === "rejected" && r.reason.status !== 401);
    if (failed) {
      notice(failed.reason.message, true, "refresh");
    } else if (!state.authNeeded) {
      clearNotice("refresh");
      $("updated").textContent = "Updated " + utcClock();
    }
  }

  function tick() {
    if (!$("auto").checked || document.hidden || state.authNeeded || $("confirm").open) return;
    refresh();
  }

  // ---- keyboard ----------------------------------------------------------

  function onKey(event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (
      target instanceof HTMLElement &&
      (target.isContentEditable || ["INPUT", "SELECT", "TEXTAREA"].includes(target.tagName))
    )
      return;
    if ($("detail").open || $("confirm").open) return; // Esc closes them natively
    switch (event.key) {
      case "/":
        event.preventDefault();
        $("f-task_name").focus();
        break;
      case "r":
        refresh();
        break;
      case "a":
        $("auto").checked = !$("auto").checked;
        break;
      case "n":
        olderPage();
        break;
      case "p":
        newerPage();
        break;
      default:
    }
  }

  // ---- start -------------------------------------------------------------

  function start() {
    $("token-form").addEventListener("submit", useToken);
    $("forget").addEventListener("click", forgetToken);
    $("forget").hidden = !storedToken();
    $("refresh").addEventListener("click", refresh);
    $("filters").addEventListener("submit", applyFilters);
    $("f-status").addEventListener("change", applyFilters);
    $("clear").addEventListener("click", clearFilters);
    $("next").addEventListener("click", olderPage);
    $("prev").addEventListener("click", newerPage);
    $("bulk-cancel").addEventListener("click", () => confirmBulk("cancel"));
    $("bulk-retry").addEventListener("click", () => confirmBulk("retry"));
    $("confirm-yes").addEventListener("click", runBulk);
    $("confirm-no").addEventListener("click", () => $("confirm").close());
    $("confirm").addEventListener("close", () => (state.bulkAction = null));
    $("detail-close").addEventListener("click", () => $("detail").close());
    $("detail").addEventListener("close", detailClosed);
    $("detail-cancel").addEventListener("click", () => taskAction("cancel"));
    $("detail-retry").addEventListener("click", () => taskAction("retry"));
    document.addEventListener("keydown", onKey);
    document.addEventListener(
      "visibilitychange",
      () => !document.hidden && $("auto").checked && refresh(),
    );
    window.addEventListener("hashchange", () => {
      const task = readHash();
      state.cursors = [null];
      updateBulkButtons();
      if (task && task !== state.taskId) openDetail(task);
      else refresh();
    });

    const task = readHash();
    updateBulkButtons();
    refresh();
    if (task) openDetail(task);
    setInterval(tick, REFRESH_MS);
  }

  start();
})();
