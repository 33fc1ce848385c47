// The failover console. Everything it shows comes from failoverd's /v1 API, called with the
// bearer token the user enters (kept in this tab's sessionStorage, never sent anywhere else).
// A run's live timeline is read from /v1/runs/{id}/events with fetch and a stream reader (an
// EventSource cannot send the Authorization header), resumed with Last-Event-ID.
// Text from the API is only ever set as textContent: nothing is parsed as HTML.
"use strict";

(function () {
  const TOKEN_KEY = "failoverd.token";
  // Status and the run list are re-read this often; a run's timeline is live (server-sent events).
  const POLL_MS = 5000;
  // Reconnecting an event stream: first after RETRY_MIN_MS, doubling up to RETRY_MAX_MS.
  const RETRY_MIN_MS = 1000;
  const RETRY_MAX_MS = 15000;
  const TERMINAL = new Set(["succeeded", "failed", "aborted", "needs_operator"]);

  let token = null;
  let pollTimer = null;
  let selected = null; // {id, run, stream: AbortController, seen: Set<seq>}

  const $ = (id) => document.getElementById(id);

  // ---- DOM helpers (text only) -----------------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "dataset") Object.assign(node.dataset, v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  function badge(text, tone) {
    return el("span", { class: "badge " + tone }, text);
  }

  function facts(pairs) {
    const dl = el("dl", { class: "facts" });
    for (const [k, v] of pairs) {
      if (v === undefined || v === null || v === "") continue;
      dl.append(el("dt", {}, k), el("dd", {}, v));
    }
    return dl;
  }

  function fillFacts(dl, pairs) {
    clear(dl);
    dl.append(...facts(pairs).childNodes);
  }

  function time(iso) {
    if (!iso) return "—";
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
  }

  function duration(seconds) {
    if (seconds === undefined || seconds === null || Number.isNaN(Number(seconds))) return "—";
    let s = Number(seconds);
    if (s < 1) return s.toFixed(2) + " s";
    if (s < 60) return s.toFixed(1) + " s";
    s = Math.round(s);
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const rest = s % 60;
    return (h ? h + " h " : "") + (h || m ? m + " min " : "") + rest + " s";
  }

  function ago(iso) {
    if (!iso) return "never";
    const ms = Date.now() - new Date(iso).getTime();
    if (Number.isNaN(ms)) return String(iso);
    return duration(Math.max(0, ms / 1000)) + " ago (" + time(iso) + ")";
  }

  function toneOf(word) {
    switch (word) {
      case "healthy": case "ok": case "pass": case "ready": case "succeeded": case "yes":
        return "good";
      case "unhealthy": case "unreachable": case "fail": case "failed": case "needs_operator":
      case "not ready": case "aborted":
        return "bad";
      case "degraded": case "warning": case "waiting_approval": case "unwinding": case "stale":
        return "warn";
      default:
        return "neutral";
    }
  }

  // Policy reasons are snake_case words (`hot_region_healthy`).
  function sentence(reason) {
    if (reason === null || reason === undefined) return "";
    return String(reason).replace(/_/g, " ");
  }

  // ---- the API -------------------------------------------------------------------------

  class ApiRefusal extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
    describe() {
      return "HTTP " + this.status + (this.code ? " " + this.code : "") + ": " + this.message;
    }
  }

  function headers(extra) {
    return Object.assign({ Authorization: "Bearer " + token, Accept: "application/json" }, extra);
  }

  async function api(method, path, body) {
    const init = {
      method,
      headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }),
      cache: "no-store",
      credentials: "omit",
      redirect: "error",
    };
    if (body !== undefined) init.body = JSON.stringify(body);
    let resp;
    try {
      resp = await fetch(path, init);
    } catch (e) {
      throw new ApiRefusal(0, "unreachable", "failoverd did not answer (" + e.message + ")");
    }
    let data = null;
    try {
      data = await resp.json();
    } catch (_) {
      data = null;
    }
    if (!resp.ok) {
      const error = (data && data.error) || {};
      throw new ApiRefusal(resp.status, error.code, error.message || resp.statusText);
    }
    return data;
  }

  // ---- token ---------------------------------------------------------------------------

  function showLogin(message) {
    stopAll();
    token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    $("console").hidden = true;
    $("login").hidden = false;
    $("forget").hidden = true;
    setConnection("no token", "neutral");
    const err = $("login-error");
    err.hidden = !message;
    err.textContent = message || "";
    $("token").value = "";
    $("token").focus();
  }

  async function connect(candidate) {
    token = candidate;
    try {
      const status = await api("GET", "/v1/status");
      sessionStorage.setItem(TOKEN_KEY, candidate);
      $("login").hidden = true;
      $("console").hidden = false;
      $("forget").hidden = false;
      renderStatus(status);
      setConnection("connected", "good");
      await refreshRuns();
      pollTimer = setInterval(poll, POLL_MS);
      const wanted = new URLSearchParams(location.hash.slice(1)).get("run");
      if (wanted) select(wanted);
    } catch (e) {
      const text = e instanceof ApiRefusal ? e.describe() : String(e);
      showLogin("The API refused this token — " + text);
    }
  }

  function stopAll() {
    if (pollTimer) clearInterval(pollTimer);
    pollTimer = null;
    if (selected && selected.stream) selected.stream.abort();
    selected = null;
  }

  function setConnection(text, tone) {
    const c = $("connection");
    c.textContent = text;
    c.className = "badge " + tone;
  }

  // A failed poll: a refused token ends the session, anything else is shown and retried.
  function pollFailed(e) {
    if (e instanceof ApiRefusal && e.status === 401) {
      showLogin("The API no longer accepts this token — " + e.describe());
      return;
    }
    setConnection(e instanceof ApiRefusal ? e.describe() : String(e), "bad");
  }

  async function poll() {
    try {
      renderStatus(await api("GET", "/v1/status"));
      await refreshRuns();
      if (selected && !(selected.run && TERMINAL.has(selected.run.status))) await refreshRun();
      setConnection("connected", "good");
    } catch (e) {
      pollFailed(e);
    }
  }

  // ---- status --------------------------------------------------------------------------

  function renderStatus(s) {
    $("pair").textContent = "pair " + s.pair + " · failoverd " + s.version;
    $("updated").textContent = "updated " + time(new Date().toISOString());
    const regions = s.regions || {};
    $("active-region").textContent = regions.active || "—";
    $("standby-region").textContent = regions.standby || "—";
    const engine = s.engine;
    fillFacts($("engine"), [
      ["ready", s.ready ? badge("ready", "good") : badge("starting", "warn")],
      ["leader", engine ? (engine.leader ? badge("this failoverd leads", "good") : badge("follower", "neutral")) : badge("engine did not answer", "bad")],
      ["active run", engine && engine.active_run ? runLink(engine.active_run) : "none"],
      ["configured", "hot " + regions.hot + " · cold " + regions.cold],
      ["failover ready", readinessSummary(s.readiness)],
      ["drift", s.topology ? (s.topology.drift || []).length
        ? badge((s.topology.drift.length === 1 ? "1 component disagrees" : s.topology.drift.length + " components disagree") + " with the recorded active region", "bad")
        : badge("none", "good") : null],
      ["retrying", engine && engine.retrying && engine.retrying.length
        ? engine.retrying.map((r) => r.step + " (" + r.attempts + " attempts: " + r.last_error + ")").join("; ")
        : null],
    ]);
    renderRegions(s);
    renderReadiness(s.readiness);
    renderPolicy(s.policy);
    renderReplication(s.replication);
    renderTopology(s.topology);
    renderCognito(s.cognito);
    renderComponents(s.components || {});
  }

  // One line for the overview: each mode's answer ("graceful: ready · ungraceful: not ready").
  function readinessSummary(r) {
    if (!r) return null;
    const modes = Object.entries(r.modes || {});
    if (!modes.length) return "not evaluated yet";
    return el("span", {}, modes.flatMap(([mode, m], i) => [i ? " · " : "", mode + " ",
      badge(m.ready ? "ready" : "not ready", m.ready ? "good" : "bad")]));
  }

  function runLink(id) {
    const a = el("a", { href: "#run=" + id, class: "mono" }, id);
    return a;
  }

  function renderRegions(s) {
    const box = clear($("regions"));
    const regions = s.regions || {};
    const health = (s.health && s.health.regions) || {};
    const probes = (s.health && s.health.probes) || [];
    for (const name of [regions.active, regions.standby]) {
      if (!name) continue;
      const verdict = health[name];
      const role = name === regions.active ? "active" : "standby";
      const configured = name === regions.hot ? "hot" : "cold";
      const card = el("div", { class: "region " + role, dataset: { region: name } },
        el("h3", {}, name + " ", badge(role, role === "active" ? "good" : "neutral"),
          " ", el("span", { class: "muted" }, "configured " + configured)));
      if (verdict) {
        card.append(facts([
          ["health", badge(verdict.health, toneOf(verdict.health))],
          ["since", ago(verdict.since)],
          ["probes up", verdict.probes_up + " of " + verdict.probes_total],
          ["why", verdict.explanation],
          ["pending", verdict.pending && verdict.pending.length ? verdict.pending.join(", ") : null],
        ]));
        if (verdict.down && verdict.down.length) {
          card.append(el("ul", { class: "plain" }, verdict.down.map((d) =>
            el("li", {}, badge("down", "bad"), " ", d.probe + " (" + d.kind + ") since " + time(d.since) +
              (d.last_error ? ": " + d.last_error : "")))));
        }
      } else {
        card.append(el("p", { class: "muted" }, "No health verdict (no probe configured for this region)."));
      }
      const mine = probes.filter((p) => p.region === name);
      if (mine.length) {
        card.append(el("ul", { class: "plain" }, mine.map((p) => {
          const tone = p.state === "up" ? "good" : p.state === "down" ? "bad" : "neutral";
          return el("li", {}, badge(p.state, tone), " ", p.name + " (" + p.kind + ", from " + p.vantage + ")",
            p.last_error ? el("span", { class: "muted" }, " " + p.last_error) : null);
        })));
      }
      box.append(card);
    }
  }

  function renderReadiness(r) {
    const box = clear($("readiness"));
    if (!r) {
      box.append(el("p", { class: "muted" }, "Readiness is not evaluated by this failoverd."));
      return;
    }
    box.append(el("p", { class: "muted" }, "Would the " + r.plan + " plan pass its preflight now? Evaluated every " + duration(r.interval_seconds) + "."));
    if (r.error) box.append(el("p", { class: "error" }, r.error));
    if (!Object.keys(r.modes || {}).length) box.append(el("p", { class: "muted" }, "Not evaluated yet."));
    for (const [mode, m] of Object.entries(r.modes || {})) {
      const ready = m.ready ? "ready" : "not ready";
      box.append(el("h3", {}, mode + " → " + m.target_region + " "), badge(ready, toneOf(ready)),
        el("span", { class: "muted" }, " since " + time(m.since) + ", evaluated " + time(m.evaluated_at)));
      const list = el("ul", { class: "plain" });
      for (const c of m.checks || []) {
        list.append(el("li", {}, badge(c.result, toneOf(c.result)), " ", c.name + ": ", el("span", { class: "muted" }, c.message)));
      }
      box.append(list);
    }
  }

  function renderPolicy(p) {
    const box = clear($("policy"));
    if (!p) {
      box.append(el("p", { class: "muted" }, "The auto-failover policy is not running."));
      return;
    }
    const d = p.last_decision;
    box.append(facts([
      ["mode", badge(p.mode, "neutral")],
      ["plan", p.plan],
      ["watching", p.active_region + " (standby " + p.standby_region + ")"],
      ["last decision", d ? badge(d.decision, d.decision === "failover" ? "bad" : "neutral") : "none yet"],
      ["because", d ? sentence(d.reason) : null],
      ["detail", d ? d.detail : null],
      ["since", d ? time(d.since) : null],
      ["cooldown until", p.cooldown_until ? time(p.cooldown_until) : null],
      ["cooldown cleared by", p.cooldown_acknowledged_by],
      ["replication lag", p.replication_lag_seconds === null || p.replication_lag_seconds === undefined ? "unknown" : duration(p.replication_lag_seconds)],
      ["drift", p.drift],
      ["last start", p.last_start ? p.last_start.plan + " run " + p.last_start.run_id + " at " + time(p.last_start.at) : null],
      ["last start failure", p.last_start_failure ? p.last_start_failure.error + " (" + time(p.last_start_failure.at) + ")" : null],
    ]));
    if (d && d.blockers && d.blockers.length) {
      box.append(el("h3", {}, "Blocking a failover"),
        el("ul", { class: "plain" }, d.blockers.map((b) => el("li", {}, badge("blocker", "warn"), " ", sentence(b)))));
    }
  }

  function renderReplication(r) {
    const box = clear($("replication"));
    if (!r || (!(r.aurora || []).length && !(r.backup_vaults || []).length)) {
      box.append(el("p", { class: "muted" }, "No replication is tracked."));
      return;
    }
    for (const a of r.aurora || []) {
      const lag = a.lag;
      let lagText = "unknown";
      let tone = "warn";
      if (lag) {
        const seconds = lag.lag_seconds;
        lagText = duration(seconds) + " of " + duration(a.max_lag_seconds) + " allowed";
        tone = lag.stale ? "warn" : seconds <= a.max_lag_seconds ? "good" : "bad";
      }
      box.append(el("h3", {}, "Aurora " + a.global_cluster));
      box.append(facts([
        ["writer", a.topology ? a.topology.writer_region || "none" : "unknown"],
        ["lag", badge(lagText, tone)],
        ["rpo lag", lag && lag.rpo_lag_seconds !== null && lag.rpo_lag_seconds !== undefined ? duration(lag.rpo_lag_seconds) : null],
        ["reading", lag ? "age " + duration(lag.age_seconds) + (lag.stale ? " — stale" : "") + ", " + lag.source + " in " + lag.region : null],
        ["topology error", a.topology_error ? a.topology_error.message : null],
        ["lag error", a.lag_error ? a.lag_error.message : null],
      ]));
    }
    for (const v of r.backup_vaults || []) {
      box.append(el("h3", {}, "Backup vault " + v.vault + " (" + v.region + ", copies from " + v.source_region + ")"));
      const resources = v.resources || [];
      if (!resources.length) box.append(el("p", { class: "muted" }, "No completed copy yet."));
      const list = el("ul", { class: "plain" });
      for (const c of resources) {
        const old = c.age_seconds > v.max_copy_age_seconds;
        list.append(el("li", {}, badge("newest copy " + duration(c.age_seconds) + " old", old ? "bad" : "good"), " ",
          el("span", { class: "mono" }, c.resource_arn)));
      }
      box.append(list);
      box.append(facts([
        ["allowed age", duration(v.max_copy_age_seconds)],
        ["failed copy jobs", v.failed_copy_jobs === null || v.failed_copy_jobs === undefined ? null
          : v.failed_copy_jobs + " in the last " + duration(v.copy_failure_window_seconds)],
        ["recovery points error", v.recovery_points_error ? v.recovery_points_error.message : null],
        ["copy jobs error", v.copy_jobs_error ? v.copy_jobs_error.message : null],
      ]));
    }
  }

  function renderTopology(t) {
    const box = clear($("topology"));
    if (!t) {
      box.append(el("p", { class: "muted" }, "The topology is not observed."));
      return;
    }
    box.append(facts([
      ["recorded active", t.active],
      ["observed", t.observed_at ? time(t.observed_at) : "not yet"],
    ]));
    const list = el("ul", { class: "plain" });
    for (const o of t.observations || []) {
      const says = o.says || {};
      const tone = says.kind === "region" ? (says.value === t.active ? "good" : "bad") : "warn";
      list.append(el("li", {}, badge(says.kind === "region" ? says.value : says.kind, tone), " ",
        o.component, o.detail ? el("span", { class: "muted" }, " — " + o.detail) : null));
    }
    box.append(list);
    if ((t.drift || []).length) {
      box.append(el("h3", {}, "Drift"),
        el("ul", { class: "plain" }, t.drift.map((d) => el("li", { class: "error" }, d.message))));
    } else {
      box.append(el("p", {}, badge("no drift", "good")));
    }
  }

  function renderCognito(c) {
    const box = clear($("cognito"));
    if (!c) {
      box.append(el("p", { class: "muted" }, "Cognito is not configured."));
      return;
    }
    const report = c.last_report || {};
    box.append(facts([
      ["mode", c.mode],
      ["direction", (c.regions || []).join(" → ")],
      ["sync", c.paused ? badge("paused", "warn") : c.running ? badge("running", "neutral") : badge("idle", "good")],
      ["leader", c.leader === undefined ? null : c.leader ? "yes" : "no (a follower writes nothing)"],
      ["last success", ago(c.last_success_at)],
      ["last attempt", c.last_attempt_at ? time(c.last_attempt_at) : null],
      ["last error", c.last_error || null],
      ["users", c.last_report ? report.hot_users + " in the source pool, " + report.cold_users + " in the target pool" : null],
      ["still differing", c.last_report ? report.drift_remaining + " users" + (report.failure_count ? ", " + report.failure_count + " failed writes" : "") : null],
      ["throttled", c.throttled_total !== undefined ? String(c.throttled_total) : null],
    ]));
  }

  function renderComponents(components) {
    const box = clear($("components"));
    const table = el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "Component"), el("th", {}, "State"), el("th", {}, "Last error"))));
    const body = el("tbody");
    for (const [name, c] of Object.entries(components)) {
      body.append(el("tr", {}, el("td", { class: "mono" }, name),
        el("td", {}, badge(c.state, toneOf(c.state))),
        el("td", { class: "muted" }, c.error || "")));
    }
    table.append(body);
    box.append(table);
  }

  // ---- runs ----------------------------------------------------------------------------

  async function refreshRuns() {
    const data = await api("GET", "/v1/runs?limit=25");
    const runs = data.runs || [];
    const body = clear($("runs").tBodies[0]);
    $("runs-empty").hidden = runs.length > 0;
    for (const r of runs) {
      const row = el("tr", { dataset: { run: r.id }, class: selected && selected.id === r.id ? "selected" : null },
        el("td", {}, time(r.created_at)),
        el("td", {}, r.plan + (r.drill ? " (drill)" : "") + (r.dry_run ? " (dry run)" : "")),
        el("td", {}, r.mode),
        el("td", {}, badge(r.status, toneOf(r.status))),
        el("td", {}, r.requested_by),
        el("td", {}, r.reason));
      row.addEventListener("click", () => { location.hash = "run=" + r.id; });
      body.append(row);
    }
  }

  function select(id) {
    if (selected && selected.id === id) return;
    if (selected && selected.stream) selected.stream.abort();
    selected = { id, run: null, stream: new AbortController(), seen: new Set() };
    for (const row of $("runs").tBodies[0].rows) row.classList.toggle("selected", row.dataset.run === id);
    $("run").hidden = false;
    $("run-id").textContent = id;
    clear($("timeline"));
    clear($("run-phases"));
    clear($("run-facts"));
    const result = $("action-result");
    result.hidden = true;
    result.textContent = "";
    refreshRun().catch(showRunError);
    follow(selected);
  }

  function showRunError(e) {
    if (e instanceof ApiRefusal && e.status === 401) return pollFailed(e);
    const result = $("action-result");
    result.hidden = false;
    result.className = "bad";
    result.textContent = e instanceof ApiRefusal ? e.describe() : String(e);
  }

  async function refreshRun() {
    const current = selected;
    if (!current) return;
    const run = await api("GET", "/v1/runs/" + encodeURIComponent(current.id));
    if (selected !== current) return;
    current.run = run;
    renderRun(run);
  }

  function renderRun(run) {
    $("run").dataset.status = run.status;
    fillFacts($("run-facts"), [
      ["status", badge(run.status, toneOf(run.status))],
      ["plan", run.plan + " (" + run.mode + ")" + (run.drill ? ", drill" : "") + (run.dry_run ? ", dry run" : "")],
      ["reason", run.reason],
      ["requested by", run.requested_by],
      ["waiting for approval", run.waiting_for_approval],
      ["abort requested by", run.abort_requested_by],
      ["message", run.message],
      ["created", time(run.created_at)],
      ["started", run.started_at ? time(run.started_at) : null],
      ["finished", run.finished_at ? time(run.finished_at) : null],
      ["took", run.report && run.report.total_duration_seconds !== undefined ? duration(run.report.total_duration_seconds) : null],
    ]);
    $("approve").disabled = run.status !== "waiting_approval";
    $("abort").disabled = TERMINAL.has(run.status);
    const phases = clear($("run-phases"));
    for (const p of run.phases || []) {
      const div = el("div", { class: "phase" }, el("span", { class: "name" }, p.name));
      if (p.approval) {
        div.append(" ", badge(p.approval.approved ? "approved" : "needs approval", p.approval.approved ? "good" : "warn"),
          el("span", { class: "muted" }, " " + p.approval.prompt));
      }
      const list = el("ul", { class: "plain" });
      for (const s of p.steps || []) {
        list.append(el("li", { dataset: { step: s.id } }, badge(s.status, toneOf(s.status)), " ",
          s.name || s.id,
          el("span", { class: "muted" },
            (s.attempts ? " · attempt " + s.attempts : "") +
            (s.duration_seconds !== undefined && s.duration_seconds !== null ? " · " + duration(s.duration_seconds) : "") +
            (s.retry ? " · retrying at " + time(s.retry.next_attempt_at) + ": " + s.retry.last_error : "") +
            (s.error ? " · " + s.error : ""))));
      }
      div.append(list);
      phases.append(div);
    }
  }

  async function act(verb) {
    const current = selected;
    if (!current) return;
    const run = current.run || {};
    const question = verb === "approve"
      ? "Approve run " + current.id + " (" + (run.plan || "?") + ")? Its next phase starts at once."
      : "Abort run " + current.id + " (" + (run.plan || "?") + ")? Completed steps are compensated.";
    if (!window.confirm(question)) return;
    const result = $("action-result");
    result.hidden = false;
    result.className = "";
    result.textContent = verb === "approve" ? "Approving…" : "Aborting…";
    try {
      const view = await api("POST", "/v1/runs/" + encodeURIComponent(current.id) + "/" + verb);
      result.className = "good";
      result.textContent = (verb === "approve" ? "Approved" : "Abort requested") + ": the run is " + view.status + ".";
      if (selected === current) {
        current.run = view;
        renderRun(view);
      }
      refreshRuns().catch(pollFailed);
    } catch (e) {
      result.className = "bad";
      result.textContent = "Refused — " + (e instanceof ApiRefusal ? e.describe() : String(e));
    }
  }

  // ---- the live timeline ---------------------------------------------------------------

  function setStream(text, tone) {
    const s = $("stream");
    s.textContent = text;
    s.className = "badge " + tone;
  }

  // Reads the run's events until the run's last one, reconnecting (with Last-Event-ID) when the
  // stream drops; stops when another run is selected or the token is forgotten.
  async function follow(current) {
    const signal = current.stream.signal;
    let lastId = null;
    let wait = RETRY_MIN_MS;
    let finished = false;
    while (!finished && !signal.aborted) {
      try {
        const extra = { Accept: "text/event-stream" };
        if (lastId !== null) extra["Last-Event-ID"] = lastId;
        const resp = await fetch("/v1/runs/" + encodeURIComponent(current.id) + "/events", {
          headers: headers(extra), cache: "no-store", credentials: "omit", signal,
        });
        if (!resp.ok) {
          let error = {};
          try { error = (await resp.json()).error || {}; } catch (_) { /* not JSON */ }
          const refusal = new ApiRefusal(resp.status, error.code, error.message || resp.statusText);
          if (resp.status >= 400 && resp.status < 500) {
            setStream("stream refused: " + refusal.describe(), "bad");
            if (resp.status === 401) pollFailed(refusal);
            return;
          }
          throw refusal;
        }
        setStream("live", "good");
        wait = RETRY_MIN_MS;
        finished = await readEvents(resp.body, current, (id) => { lastId = id; });
      } catch (e) {
        if (signal.aborted) return;
        setStream("reconnecting: " + (e instanceof ApiRefusal ? e.describe() : e.message), "warn");
      }
      if (finished || signal.aborted) break;
      await new Promise((resolve) => setTimeout(resolve, wait));
      wait = Math.min(wait * 2, RETRY_MAX_MS);
    }
    if (finished && !signal.aborted) setStream("run finished", "neutral");
  }

  // Parses a text/event-stream body (the WHATWG format: fields up to a blank line). Returns true
  // once the run's terminal event was seen.
  async function readEvents(body, current, onId) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let event = { type: "", data: [], id: null };
    let terminal = false;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      const lines = buffer.split(/\r\n|\r|\n/);
      buffer = lines.pop();
      for (const line of lines) {
        if (line === "") {
          if (event.id !== null) onId(event.id);
          if (event.data.length) terminal = dispatch(current, event.type || "message", event.data.join("\n")) || terminal;
          event = { type: "", data: [], id: null };
          continue;
        }
        if (line.startsWith(":")) continue; // keep-alive comment
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let val = colon < 0 ? "" : line.slice(colon + 1);
        if (val.startsWith(" ")) val = val.slice(1);
        if (field === "data") event.data.push(val);
        else if (field === "event") event.type = val;
        else if (field === "id") event.id = val;
      }
    }
    return terminal;
  }

  let refreshPending = null;

  function dispatch(current, type, data) {
    if (selected !== current) return false;
    if (type === "error") {
      let message = data;
      try { message = JSON.parse(data).error.message; } catch (_) { /* as sent */ }
      setStream("stream error: " + message, "bad");
      return false;
    }
    let entry;
    try {
      entry = JSON.parse(data);
    } catch (_) {
      return false;
    }
    if (current.seen.has(entry.seq)) return false;
    current.seen.add(entry.seq);
    $("timeline").append(timelineItem(entry));
    // The phases and the status follow the journal: re-read the run once the burst is over.
    if (!refreshPending) {
      refreshPending = setTimeout(() => {
        refreshPending = null;
        refreshRun().catch(showRunError);
      }, 250);
    }
    const kind = entry.event && entry.event.type;
    return kind === "run_finished" || kind === "needs_operator";
  }

  function timelineItem(entry) {
    const e = entry.event || {};
    const parts = [];
    if (e.step) parts.push(e.step);
    if (e.attempt) parts.push("attempt " + e.attempt);
    if (e.gate) parts.push(e.gate);
    if (e.by) parts.push("by " + e.by);
    if (e.outcome) parts.push(e.outcome);
    if (e.cause) parts.push(sentence(e.cause.kind) + (e.cause.step ? " " + e.cause.step : ""));
    if (e.error) parts.push(e.error);
    if (e.retry_at) parts.push("retry at " + time(e.retry_at));
    if (e.message) parts.push(e.message);
    return el("li", { dataset: { seq: entry.seq, type: e.type } },
      el("span", { class: "when" }, time(e.at)),
      el("span", { class: "what" }, (e.type || "event").replace(/_/g, " ")),
      parts.join(" · "));
  }

  // ---- wiring --------------------------------------------------------------------------

  function start() {
    $("login-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const value = $("token").value.trim();
      if (value) connect(value);
    });
    $("forget").addEventListener("click", () => showLogin(""));
    $("approve").addEventListener("click", () => act("approve"));
    $("abort").addEventListener("click", () => act("abort"));
    window.addEventListener("hashchange", () => {
      const wanted = new URLSearchParams(location.hash.slice(1)).get("run");
      if (wanted && token) {
        select(wanted);
        $("run").scrollIntoView({ block: "start" });
      }
    });
    const saved = sessionStorage.getItem(TOKEN_KEY);
    if (saved) connect(saved);
    else showLogin("");
  }

  document.addEventListener("DOMContentLoaded", start);
})();
