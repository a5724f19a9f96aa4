// Endpoints page: every registered endpoint with its URL and model; Stop.
"use strict";
(() => {
  const { api, el, errorBlock, statusBadge, table, poll } = Console;
  const holder = document.getElementById("endpoints");
  poll(async () => {
    const answer = await api("GET", "/api/endpoints");
    if (!answer.ok) { holder.replaceChildren(errorBlock(answer.data)); return true; }
    const endpoints = answer.data.endpoints;
    if (!endpoints.length) { holder.replaceChildren(el("p", { class: "muted", text: "No endpoints yet." })); return true; }
    holder.replaceChildren(table(["endpoint", "status", "url", "model", "job", ""], endpoints.map((e) => el("tr", { "data-endpoint": e.name },
      el("td", {}, el("a", { href: `/endpoints/${encodeURIComponent(e.name)}`, class: "mono", text: e.name })),
      el("td", {}, statusBadge(e.status)), el("td", { class: "mono", text: e.url }),
      el("td", { class: "mono", text: e.model_id || e.model }),
      el("td", {}, e.job_name ? el("a", { href: `/jobs/${encodeURIComponent(e.job_name)}`, text: e.job_name }) : ""),
      el("td", {}, e.status === "running" || e.status === "starting"
        ? el("button", { "data-testid": "stop-endpoint", onclick: async (ev) => { ev.target.disabled = true; await api("POST", `/api/endpoints/${encodeURIComponent(e.name)}/stop`); }, text: "Stop" }) : ""))),
      { "data-testid": "endpoints-table" }));
    return true;
  }, 2000);
})();
