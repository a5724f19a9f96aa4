// Train page: the form prefilled from the model's defaults, checked as the user types, and
// Start, which creates the job in the registry and opens its page.
"use strict";
(() => {
  const { api, el, errorBlock, query } = Console;
  const form = document.getElementById("train-form");
  const modelSelect = document.getElementById("model-id");
  const errorArea = document.getElementById("train-error");
  let options = [];
  let checkTimer = null;

  function fieldFor(option) {
    const id = `hp-${option.name}`;
    const input = option.choices.length
      ? el("select", { id, name: option.name }, option.choices.map((c) => el("option", { value: c, text: c, selected: c === option.default })))
      : el("input", { id, name: option.name, value: option.default, autocomplete: "off", inputmode: option.kind === "str" ? null : "decimal" });
    input.dataset.default = option.default;
    input.addEventListener("input", scheduleCheck);
    return el("div", { class: "field" },
      el("label", { for: id, class: "mono", text: option.name }),
      input,
      el("div", { class: "muted small", text: option.allowed }),
      el("div", { class: "field-error", id: `${id}-error`, "data-testid": `hp-error-${option.name}` }));
  }

  function changedValues() {
    const values = {};
    for (const option of options) {
      const input = document.getElementById(`hp-${option.name}`);
      if (input.value.trim() !== option.default) values[option.name] = input.value.trim();
    }
    return values;
  }

  function showProblems(problems) {
    for (const option of options) {
      const message = problems[option.name] || "";
      document.getElementById(`hp-${option.name}-error`).textContent = message;
      document.getElementById(`hp-${option.name}`).classList.toggle("invalid", Boolean(message));
      if (message && !option.reference) form.querySelector("details").open = true;
    }
  }

  async function check() {
    const answer = await api("POST", "/api/hyperparameters/check", { model_id: modelSelect.value, hyperparameters: changedValues() });
    if (!answer.ok) { errorArea.replaceChildren(errorBlock(answer.data)); return false; }
    showProblems(answer.data.problems || {});
    errorArea.replaceChildren();
    return answer.data.ok;
  }

  function scheduleCheck() {
    clearTimeout(checkTimer);
    checkTimer = setTimeout(check, 250);
  }

  async function loadModel(modelId) {
    const answer = await api("GET", `/api/models/${encodeURIComponent(modelId)}`);
    if (!answer.ok) { errorArea.replaceChildren(errorBlock(answer.data)); return; }
    options = answer.data.hyperparameters;
    document.getElementById("hp-main").replaceChildren(...options.filter((o) => o.reference).map(fieldFor));
    document.getElementById("hp-extra").replaceChildren(...options.filter((o) => !o.reference).map(fieldFor));
  }

  function fieldError(name, data) {
    const holder = form.querySelector(`[data-testid="field-error-${name}"]`);
    if (holder) holder.replaceChildren(data ? errorBlock(data, `error-${name}`) : "");
  }

  // The dataset's first problem by its field (every problem: the Data page), or true.
  async function checkDataset(name, location) {
    const answer = await api("POST", "/api/data/validate", { location, decode_images: false });
    if (!answer.ok) { fieldError(name, answer.data); return false; }
    if (answer.data.ok) return true;
    if (answer.data.failure) { fieldError(name, answer.data.failure); return false; }
    const errors = answer.data.report.errors;
    const first = errors[0];
    const where = [first.file, first.record, first.field ? `field '${first.field}'` : null].filter(Boolean).join(", ");
    fieldError(name, { error: `the ${name} dataset is invalid: ${errors.length} error(s); first: ${where}: ${first.message}`,
      where: name, hint: first.hint || "the Data page lists every problem" });
    const link = el("a", { href: `/data?location=${encodeURIComponent(location)}`, text: "see every problem on the Data page" });
    form.querySelector(`[data-testid="field-error-${name}"]`).append(link);
    return false;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = document.getElementById("start-training");
    fieldError("training", null);
    fieldError("validation", null);
    const training = document.getElementById("training").value.trim();
    if (!training) { fieldError("training", { error: "choose the training data", where: "training", hint: "a folder or s3:// URI (the Data page checks it)" }); return; }
    button.disabled = true;
    try {
      if (!(await check())) return;
      const validation = document.getElementById("validation").value.trim();
      if (!(await checkDataset("training", training))) return;
      if (validation && !(await checkDataset("validation", validation))) return;
      const answer = await api("POST", "/api/jobs", {
        model_id: modelSelect.value, training,
        validation,
        hyperparameters: changedValues(),
      });
      if (answer.ok) { window.location.href = `/jobs/${encodeURIComponent(answer.data.name)}`; return; }
      if (answer.data.problems) showProblems(answer.data.problems);
      if (["training", "validation"].includes(answer.data.where)) fieldError(answer.data.where, answer.data);
      else errorArea.replaceChildren(errorBlock(answer.data, "start-error"));
    } finally {
      button.disabled = false;
    }
  });

  async function load() {
    const answer = await api("GET", "/api/models");
    if (!answer.ok) { errorArea.replaceChildren(errorBlock(answer.data)); return; }
    const chosen = query.get("model_id") || answer.data.default;
    for (const m of answer.data.models.filter((m) => m.trainable)) {
      modelSelect.append(el("option", { value: m.model_id, text: m.model_id + (m.is_default ? " (default)" : ""), selected: m.model_id === chosen }));
    }
    document.getElementById("training").value = query.get("training") || "";
    modelSelect.addEventListener("change", () => loadModel(modelSelect.value));
    await loadModel(modelSelect.value);
  }
  load();
})();
