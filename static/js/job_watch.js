// Live job widgets: connect to /ws/jobs/<id>/, replay stored history, then follow
// live events. On reconnect, ask only for events after the last one seen.
// Event kinds and job states are the server's (jobs/states.py job_wire, in base.html's
// #job-wire); other scripts read them from window.LatheJobWire.
(function () {
  "use strict";
  const WIRE = JSON.parse(document.getElementById("job-wire").textContent);
  const KIND = WIRE.event_kinds;
  const STATE = WIRE.states;
  const FINISHED = new Set(WIRE.finished_states);
  const LABELS = WIRE.state_labels;
  window.LatheJobWire = WIRE;

  function formatEta(seconds) {
    if (seconds == null || !isFinite(seconds)) return "";
    if (seconds < 60) return "about " + Math.ceil(seconds) + " s left";
    if (seconds < 3600) return "about " + Math.ceil(seconds / 60) + " min left";
    return "about " + (seconds / 3600).toFixed(1) + " h left";
  }

  function watch(el) {
    const jobId = el.dataset.jobId;
    const reloadOnFinish = el.dataset.reloadOnFinish === "1";
    const part = (role) => el.querySelector('[data-role="' + role + '"]');
    let lastSeq = 0;
    let retries = 0;
    let finished = FINISHED.has(el.dataset.state);
    const seen = new Set();

    function setState(state, error) {
      el.dataset.state = state;
      const stateEl = part("state");
      stateEl.textContent = LABELS[state] || state;
      stateEl.className = "state state-" + state;
      if (error && error.message) part("error").textContent = error.message + " " + (error.hint || "");
      if (state === STATE.SUCCEEDED) part("fill").style.width = "100%";
      if (FINISHED.has(state)) {
        part("eta").textContent = "";
        if (!finished && reloadOnFinish) setTimeout(() => window.location.reload(), 300);
        finished = true;
      }
    }
    function setProgress(fraction, message, eta) {
      part("fill").style.width = Math.round(fraction * 100) + "%";
      el.querySelector(".bar").setAttribute("aria-valuenow", Math.round(fraction * 100));
      if (message) part("message").textContent = message + " · " + Math.round(fraction * 100) + "%";
      part("eta").textContent = formatEta(eta);
    }
    function addLog(at, text, level) {
      const li = document.createElement("li");
      li.className = "log-" + (level || "info");
      li.textContent = new Date(at).toLocaleTimeString() + "  " + text;
      part("log").appendChild(li);
    }
    function handle(msg) {
      if (msg.type === "snapshot") {
        setProgress(msg.job.progress, msg.job.progress_message, msg.job.eta_seconds);
        setState(msg.job.state, msg.job.error);
        return;
      }
      if (msg.seq != null) {
        if (seen.has(msg.seq)) return;
        seen.add(msg.seq);
        lastSeq = Math.max(lastSeq, msg.seq);
      }
      const p = msg.payload || {};
      if (msg.kind === KIND.PROGRESS) setProgress(p.fraction, p.message, p.eta_seconds);
      else if (msg.kind === KIND.STATE) { setState(p.state, p.error); addLog(msg.at, "State: " + (LABELS[p.state] || p.state), "info"); }
      else if (msg.kind === KIND.LOG) addLog(msg.at, p.message, p.level);
      el.dispatchEvent(new CustomEvent("lathe:event", { detail: msg }));
    }
    function poll() {
      fetch("/jobs/" + jobId + "/events/?after=" + lastSeq, { credentials: "same-origin" })
        .then((r) => r.json())
        .then((data) => { handle({ type: "snapshot", job: data.job }); data.events.forEach(handle); })
        .finally(() => { if (!finished) setTimeout(poll, 2000); });
    }
    function connect() {
      const scheme = window.location.protocol === "https:" ? "wss" : "ws";
      const ws = new WebSocket(scheme + "://" + window.location.host + "/ws/jobs/" + jobId + "/?after=" + lastSeq);
      ws.onopen = () => { retries = 0; };
      ws.onmessage = (event) => handle(JSON.parse(event.data));
      ws.onclose = () => {
        if (finished) return;
        retries += 1;
        if (retries > 5) { poll(); return; }  // websockets blocked by a proxy: fall back to polling
        setTimeout(connect, Math.min(10000, 500 * 2 ** retries));
      };
    }
    connect();
  }

  window.LatheJob = { watch };
  document.addEventListener("DOMContentLoaded", () => document.querySelectorAll(".job-watch").forEach(watch));
})();
