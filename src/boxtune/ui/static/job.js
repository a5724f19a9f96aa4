// Job page: live status, progress with ETA, loss and mAP charts, log tail; Stop and Resume;
// once completed the final metrics, the evaluation report and Deploy.
"use strict";
(() => {
  const { api, el, errorBlock, number, duration, statusBadge, table, poll } = Console;
  const name = document.getElementById("job-name").dataset.name;
  const base = `/api/jobs/${encodeURIComponent(name)}`;
  const errorArea = document.getElementById("job-error");
  let chartedEpochs = -1;
  let logScrolledByUser = false;
  const log = document.getElementById("log-tail");
  log.addEventListener("scroll", () => { logScrolledByUser = log.scrollTop + log.clientHeight < log.scrollHeight - 8; });

  async function act(path, label) {
    errorArea.replaceChildren();
    const answer = await api("POST", `${base}/${path}`);
    if (!answer.ok) { errorArea.replaceChildren(errorBlock(answer.data, `${path}-error`)); return null; }
    Console.flash(label, "info");
    return answer.data;
  }

  function button(text, testid, onclick, primary = false) {
    return el("button", { "data-testid": testid, class: primary ? "primary" : "", onclick: async (e) => { e.target.disabled = true; await onclick(); e.target.disabled = false; refresh(); }, text });
  }

  let actionsKey = null;
  function renderActions(job) {
    // Rebuilt only when what they depend on changes, so a click never meets a new button.
    const key = `${job.status}/${Boolean(job.evaluation)}`;
    if (key === actionsKey) return;
    actionsKey = key;
    const actions = [];
    if (job.status === "queued" || job.status === "running") actions.push(button("Stop", "stop-job", () => act("stop", "stopping…")));
    if (job.status === "stopped" || job.status === "failed") actions.push(button("Resume", "resume-job", () => act("resume", "resumed")));
    if (job.status === "completed") {
      actions.push(button("Deploy", "deploy-job", async () => {
        const endpoint = await act("deploy", "endpoint starting…");
        if (endpoint) window.location.href = `/endpoints/${encodeURIComponent(endpoint.name)}`;
      }, true));
      if (!job.evaluation) actions.push(button("Evaluate", "evaluate-job", () => act("evaluate", "evaluation started")));
    }
    document.getElementById("job-actions").replaceChildren(...actions);
  }

  function renderProgress(job) {
    const p = job.progress;
    document.getElementById("progress-bar").style.width = `${Math.round((p.fraction || 0) * 100)}%`;
    let text = `epoch ${p.epochs_done} of ${p.epochs_total ?? "?"}`;
    if (p.seconds_per_epoch) text += ` · ${duration(p.seconds_per_epoch)} per epoch`;
    if (p.eta_s !== null && (job.status === "running" || job.status === "queued")) text += ` · about ${duration(p.eta_s)} left`;
    document.getElementById("progress-text").textContent = text;
    const facts = [`model ${job.model_id || job.base_model}`, `training data ${job.inputs.training}`];
    if (job.inputs.validation) facts.push(`validation ${job.inputs.validation}`);
    if (job.duration_s !== null) facts.push(`ran ${duration(job.duration_s)}`);
    if (job.failure_reason) facts.push(`reason: ${job.failure_reason}`);
    document.getElementById("job-facts").textContent = facts.join(" · ");
  }

  function renderCharts(job) {
    if (job.metrics.length === chartedEpochs) return;
    chartedEpochs = job.metrics.length;
    const stamp = `?epochs=${chartedEpochs}`;
    document.getElementById("chart-loss").src = `${base}/charts/loss.svg${stamp}`;
    document.getElementById("chart-map").src = `${base}/charts/map.svg${stamp}`;
  }

  function renderResults(job) {
    const section = document.getElementById("job-results");
    section.hidden = job.status !== "completed";
    if (section.hidden) return;
    const last = job.metrics[job.metrics.length - 1] || {};
    const best = job.metrics.filter((m) => m.best === true).pop() || last;
    const rows = [["epochs", job.metrics.length], ["best epoch", best.epoch], ["validation mAP@[.5:.95]", number(best.val_map)],
      ["validation mAP@.5", number(best.val_map50)], ["training loss (last)", number(last.loss)], ["validation loss (last)", number(last.val_loss)]];
    document.getElementById("job-metrics").replaceChildren(
      table(["metric", "value"], rows.map(([k, v]) => el("tr", {}, el("td", { text: k }), el("td", { text: v }))), { "data-testid": "job-metrics" }));
    const holder = document.getElementById("job-evaluation");
    const ev = job.evaluation;
    if (!ev) { holder.replaceChildren(el("p", { class: "muted", text: "Evaluate measures mAP, per-class AP, PR curves and the confusion matrix on the validation data." })); return; }
    if (ev.report_url) {
      if (!holder.querySelector("iframe")) {
        holder.replaceChildren(el("h3", { text: "Evaluation report" }),
          el("p", {}, el("a", { href: ev.report_url, target: "_blank", rel: "noopener", text: "open in a new tab" })),
          el("iframe", { src: ev.report_url, class: "report", title: "evaluation report", "data-testid": "evaluation-report" }));
      }
    } else if (ev.status === "failed") {
      holder.replaceChildren(errorBlock({ error: `evaluation failed: ${ev.failure_reason || "see its log"}`, where: ev.name, hint: "`boxtune jobs logs " + ev.name + "`" }, "evaluation-error"));
    } else {
      holder.replaceChildren(el("p", { class: "muted", "data-testid": "evaluation-status", text: `evaluation ${ev.status}…` }));
    }
  }

  function renderEndpoints(job) {
    const section = document.getElementById("job-endpoints");
    section.hidden = !job.endpoints.length;
    section.replaceChildren(el("h2", { text: "Endpoints of this job" }),
      table(["endpoint", "status", "url"], job.endpoints.map((e) => el("tr", {},
        el("td", {}, el("a", { href: `/endpoints/${encodeURIComponent(e.name)}`, class: "mono", text: e.name })),
        el("td", {}, statusBadge(e.status)), el("td", { class: "mono", text: e.url })))));
  }

  async function refresh() {
    const answer = await api("GET", base);
    if (!answer.ok) { errorArea.replaceChildren(errorBlock(answer.data)); return answer.status !== 400; }
    const job = answer.data;
    document.getElementById("job-status").replaceChildren(statusBadge(job.status));
    renderProgress(job);
    renderActions(job);
    renderCharts(job);
    renderResults(job);
    renderEndpoints(job);
    log.textContent = job.log_tail;
    if (!logScrolledByUser) log.scrollTop = log.scrollHeight;
    return true;
  }

  // Every second, also once the job ended: a Resume from the CLI shows up here too.
  poll(refresh, 1000);
})();
