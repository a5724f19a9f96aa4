// Data page: choose, generate or upload a dataset; show its validation, stats and images.
"use strict";
(() => {
  const { api, el, fill, errorBlock, number, table, query } = Console;
  const locationInput = document.getElementById("dataset-location");
  const errorArea = document.getElementById("data-error");
  const results = document.getElementById("validation");

  function busy(text) {
    errorArea.replaceChildren();
    results.replaceChildren(el("p", { class: "muted", "data-testid": "busy", text }));
  }

  function issueRows(issues) {
    return issues.map((i) => el("tr", { class: `issue-${i.severity}` },
      el("td", { text: i.severity }), el("td", { class: "mono", text: i.file }),
      el("td", { text: i.record || "" }), el("td", { class: "mono", text: i.field || "" }),
      el("td", {}, i.message, i.hint ? el("div", { class: "hint", text: `hint: ${i.hint}` }) : null)));
  }

  function statsBlock(stats) {
    const classes = stats.classes.map((c) => el("tr", {}, el("td", { text: c.name }), el("td", { text: c.id }),
      el("td", { text: c.boxes }), el("td", { text: c.images })));
    return el("div", { class: "cards" },
      el("section", { class: "panel" }, el("h3", { text: "Stats" }),
        el("dl", { class: "facts", "data-testid": "stats" },
          el("dt", { text: "images" }), el("dd", { text: stats.images }),
          el("dt", { text: "boxes" }), el("dd", { text: stats.boxes }),
          el("dt", { text: "negatives" }), el("dd", { text: stats.negatives }),
          el("dt", { text: "boxes per image" }), el("dd", { text: `${number(stats.boxes_per_image.mean)} mean, ${number(stats.boxes_per_image.max)} max` }),
          el("dt", { text: "image size" }), el("dd", { text: `${number(stats.image_width.mean)} × ${number(stats.image_height.mean)} px mean` }))),
      el("section", { class: "panel" }, el("h3", { text: "Classes" }),
        table(["class", "id", "boxes", "images"], classes, { "data-testid": "class-table" })));
  }

  function show(answer) {
    if (answer.failure) {
      results.replaceChildren(el("div", { class: "banner bad", "data-testid": "validation-summary", text: `Cannot read ${answer.location}` }),
        errorBlock(answer.failure, "validation-error"));
      return;
    }
    const report = answer.report;
    const summary = report.ok
      ? `Valid: ${answer.location} (${report.warnings.length} warning(s))`
      : `Invalid: ${report.errors.length} error(s), ${report.warnings.length} warning(s) in ${answer.location}`;
    const issues = [...report.errors, ...report.warnings];
    fill(results,
      el("div", { class: `banner ${report.ok ? "good" : "bad"}`, "data-testid": "validation-summary", text: summary }),
      issues.length ? table(["severity", "file", "record", "field", "problem"], issueRows(issues), { "data-testid": "issues-table" }) : null,
      answer.stats ? statsBlock(answer.stats) : null,
      answer.preview_url ? el("section", { class: "panel" }, el("h3", { text: "Images with their boxes" }),
        el("img", { class: "sheet", src: answer.preview_url, alt: "contact sheet", "data-testid": "contact-sheet" })) : null,
      report.ok ? el("div", { class: "actions" }, el("a", { class: "button primary", "data-testid": "train-on-dataset",
        href: `/train?training=${encodeURIComponent(answer.location)}`, text: "Train on this dataset" })) : null);
  }

  async function validate(location) {
    locationInput.value = location;
    busy(`validating ${location}…`);
    const answer = await api("POST", "/api/data/validate", { location });
    if (!answer.ok) { results.replaceChildren(); errorArea.replaceChildren(errorBlock(answer.data)); return; }
    show(answer.data);
    history.replaceState(null, "", `/data?location=${encodeURIComponent(location)}`);
  }

  document.getElementById("location-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const location = locationInput.value.trim();
    if (!location) { errorArea.replaceChildren(errorBlock({ error: "give a folder or s3:// URI", where: "location", hint: "e.g. /data/my-dataset" })); return; }
    validate(location);
  });

  document.getElementById("sample-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    busy("generating the sample dataset…");
    const images = document.getElementById("sample-images").value;
    const answer = await api("POST", "/api/data/sample", { images });
    if (!answer.ok) { results.replaceChildren(); errorArea.replaceChildren(errorBlock(answer.data)); return; }
    validate(answer.data.location);
  });

  document.getElementById("dataset-zip").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    if (!file) return;
    busy(`uploading ${file.name}…`);
    const answer = await api("POST", `/api/data/upload?filename=${encodeURIComponent(file.name)}`, file, { contentType: "application/zip" });
    event.target.value = "";
    if (!answer.ok) { results.replaceChildren(); errorArea.replaceChildren(errorBlock(answer.data, "upload-error")); return; }
    validate(answer.data.location);
  });

  if (query.get("location")) validate(query.get("location"));
})();
