// Shared helpers of the console's pages: API calls, DOM building, error display.
"use strict";

const Console = (() => {
  // Every API call resolves (never throws for an HTTP error): {ok, status, data}.
  async function api(method, path, body, options = {}) {
    const init = { method, headers: {} };
    if (body instanceof Blob || body instanceof ArrayBuffer) {
      init.body = body;
      init.headers["Content-Type"] = options.contentType || "application/octet-stream";
    } else if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers["Content-Type"] = "application/json";
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      return { ok: false, status: 0, data: { error: `the console did not answer (${err})`,
        hint: "is `boxtune ui` still running?" } };
    }
    const text = await response.text();
    let data;
    try { data = text ? JSON.parse(text) : {}; } catch (_) { data = { error: text }; }
    return { ok: response.ok, status: response.status, data };
  }

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // replaceChildren that leaves out absent parts (null, undefined, false) instead of printing them.
  function fill(node, ...children) {
    node.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  }

  // An error answer ({error, where, hint}) as a block: what, where, how to fix.
  function errorBlock(data, testid = "error") {
    const box = el("div", { class: "error-box", "data-testid": testid, role: "alert" });
    box.append(el("div", { class: "error-message" },
      data.where ? el("span", { class: "where", text: `${data.where}: ` }) : null,
      data.error || "unknown error"));
    if (data.hint) box.append(el("div", { class: "hint", text: `hint: ${data.hint}` }));
    return box;
  }

  function flash(message, kind = "info") {
    const node = document.getElementById("flash");
    node.textContent = message;
    node.className = `flash ${kind}`;
    node.hidden = !message;
  }

  function number(value, digits = 3) {
    if (value === null || value === undefined || Number.isNaN(value)) return "–";
    return typeof value === "number" ? Number(value.toPrecision(digits)).toString() : String(value);
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    const s = Math.round(seconds);
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
    return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  }

  function statusBadge(status) {
    return el("span", { class: `badge status-${status}`, "data-testid": "status", text: status });
  }

  function table(headers, rows, attrs = {}) {
    return el("div", { class: "table-wrap" },
      el("table", attrs,
        el("thead", {}, el("tr", {}, headers.map((h) => el("th", { text: h })))),
        el("tbody", {}, rows)));
  }

  // Poll fn every `ms` while the page is visible; fn returns false to stop.
  function poll(fn, ms) {
    let stopped = false;
    async function tick() {
      if (stopped) return;
      let again = true;
      try { again = await fn(); } catch (err) { flash(String(err), "error"); }
      if (again !== false && !stopped) setTimeout(tick, ms);
    }
    tick();
    return () => { stopped = true; };
  }

  async function copyText(text, button) {
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = "Copied";
    } catch (_) {
      // Clipboard access needs a secure context or permission: select the text instead.
      const pre = button.previousElementSibling;
      if (pre) window.getSelection().selectAllChildren(pre);
      button.textContent = "Selected: press Ctrl+C";
    }
    setTimeout(() => { button.textContent = "Copy"; }, 2000);
  }

  const query = new URLSearchParams(window.location.search);
  return { api, el, fill, errorBlock, flash, number, duration, statusBadge, table, poll, copyText, query };
})();
