// Jobs page: the registry's training jobs, refreshed while any is active.
"use strict";
(() => {
  const { api, el, errorBlock, duration, statusBadge, table, poll } = Console;
  poll(async () => {
    const answer = await api("GET", "/api/jobs");
    const holder = document.getElementById("jobs");
    if (!answer.ok) { holder.replaceChildren(errorBlock(answer.data)); return true; }
    const jobs = answer.data.jobs;
    if (!jobs.length) { holder.replaceChildren(el("p", { class: "muted", text: "No jobs yet." })); return true; }
    holder.replaceChildren(table(["job", "status", "model", "epochs", "started", "duration"], jobs.map((job) =>
      el("tr", {}, el("td", {}, el("a", { href: `/jobs/${encodeURIComponent(job.name)}`, class: "mono", text: job.name })),
        el("td", {}, statusBadge(job.status)), el("td", { class: "mono", text: job.model_id || job.base_model || "" }),
        el("td", { text: `${job.progress.epochs_done} / ${job.progress.epochs_total ?? "?"}` }),
        el("td", { text: job.started_at || job.created_at || "" }), el("td", { text: duration(job.duration_s) }))),
      { "data-testid": "jobs-table" }));
    return true;
  }, 3000);
})();
