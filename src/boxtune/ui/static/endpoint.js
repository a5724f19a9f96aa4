// Endpoint page: status and log while it starts; Try it (an image in, its boxes drawn with
// labels and scores above the slider's threshold, the raw JSON); snippets; Stop.
"use strict";
(() => {
  const { api, el, errorBlock, statusBadge, poll, copyText } = Console;
  const name = document.getElementById("endpoint-name").dataset.name;
  const base = `/api/endpoints/${encodeURIComponent(name)}`;
  const canvas = document.getElementById("try-canvas");
  const slider = document.getElementById("score-threshold");
  const tryError = document.getElementById("try-error");
  const raw = document.getElementById("raw-answer");
  const palette = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324"];
  let picture = null;
  let answer = null;
  let endpoint = null;

  function draw() {
    document.getElementById("score-value").textContent = Number(slider.value).toFixed(2);
    if (!picture) return;
    canvas.hidden = false;
    canvas.width = picture.naturalWidth;
    canvas.height = picture.naturalHeight;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(picture, 0, 0);
    let drawn = 0;
    if (answer && Array.isArray(answer.normalized_boxes)) {
      const line = Math.max(2, Math.round(canvas.width / 300));
      ctx.lineWidth = line;
      ctx.font = `${Math.max(12, Math.round(canvas.width / 45))}px sans-serif`;
      answer.normalized_boxes.forEach((box, i) => {
        const score = answer.scores[i];
        if (score < Number(slider.value)) return;
        const cls = answer.classes[i];
        const label = `${(answer.labels || [])[cls] ?? cls} ${(score * 100).toFixed(0)}%`;
        const [x1, y1, x2, y2] = [box[0] * canvas.width, box[1] * canvas.height, box[2] * canvas.width, box[3] * canvas.height];
        const colour = palette[cls % palette.length];
        ctx.strokeStyle = colour;
        ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
        const textWidth = ctx.measureText(label).width + 8;
        const textHeight = parseInt(ctx.font, 10) + 6;
        ctx.fillStyle = colour;
        ctx.fillRect(x1, Math.max(0, y1 - textHeight), textWidth, textHeight);
        ctx.fillStyle = "#fff";
        ctx.fillText(label, x1 + 4, Math.max(textHeight - 6, y1 - 6));
        drawn += 1;
      });
    }
    canvas.dataset.boxes = String(drawn);
  }

  function loadPicture(file) {
    return new Promise((resolve) => {
      const image = new Image();
      const url = URL.createObjectURL(file);
      image.onload = () => resolve(image);
      image.onerror = () => resolve(null);  // not an image the browser shows: the endpoint says why
      image.src = url;
    });
  }

  async function tryFile(file) {
    tryError.replaceChildren();
    raw.textContent = "asking the endpoint…";
    picture = await loadPicture(file);
    answer = null;
    if (!picture) canvas.hidden = true;
    // Always the generic image type: the endpoint sniffs the bytes and says what they are.
    const result = await api("POST", `${base}/invocations`, file, { contentType: "application/x-image" });
    if (!result.ok) { raw.textContent = ""; tryError.replaceChildren(errorBlock(result.data, "try-error")); return; }
    raw.textContent = `HTTP ${result.data.status}\n${JSON.stringify(result.data.answer, null, 2)}`;
    if (result.data.status !== 200) {
      const body = typeof result.data.answer === "object" ? result.data.answer : { error: String(result.data.answer) };
      tryError.replaceChildren(errorBlock({ error: body.error, where: file.name, hint: body.hint }, "try-error"));
      canvas.hidden = true;
      picture = null;
      return;
    }
    answer = result.data.answer;
    draw();
  }

  document.getElementById("try-image").addEventListener("change", (event) => {
    if (event.target.files[0]) tryFile(event.target.files[0]);
  });
  const zone = document.getElementById("drop-zone");
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    if (event.dataTransfer.files[0]) tryFile(event.dataTransfer.files[0]);
  });
  slider.addEventListener("input", draw);

  for (const button of document.querySelectorAll("[data-copy]")) {
    button.addEventListener("click", () => copyText(document.getElementById(button.dataset.copy).textContent, button));
  }
  const stopButton = document.getElementById("stop-endpoint");
  stopButton.addEventListener("click", async () => {
    stopButton.disabled = true;
    const result = await api("POST", `${base}/stop`);
    if (!result.ok) document.getElementById("endpoint-error").replaceChildren(errorBlock(result.data));
  });

  function snippets(e) {
    document.getElementById("curl-snippet").textContent =
      `curl -s -X POST ${e.url}/invocations \\\n  -H 'Content-Type: application/x-image' \\\n  -H 'Accept: application/json;verbose' \\\n  --data-binary @image.jpg`;
    document.getElementById("sdk-snippet").textContent = [
      "import json",
      "",
      "from boxtune.sagemaker.predictor import Predictor",
      "",
      `predictor = Predictor("${e.name}")  # the endpoint's name in this BOXTUNE_HOME`,
      'with open("image.jpg", "rb") as f:',
      '    body = predictor.predict(f.read(), {"ContentType": "application/x-image", "Accept": "application/json;verbose"})',
      "answer = json.loads(body)",
      'print(answer["labels"], answer["scores"][:5])',
    ].join("\n");
  }

  poll(async () => {
    const result = await api("GET", base);
    if (!result.ok) { document.getElementById("endpoint-error").replaceChildren(errorBlock(result.data)); return result.status !== 400; }
    endpoint = result.data;
    document.getElementById("endpoint-status").replaceChildren(statusBadge(endpoint.status));
    document.getElementById("endpoint-facts").textContent =
      `${endpoint.url} · model ${endpoint.model_id || ""} ${endpoint.model}` + (endpoint.failure_reason ? ` · ${endpoint.failure_reason}` : "");
    document.getElementById("endpoint-log").textContent = endpoint.log_tail;
    const live = endpoint.status === "running" || endpoint.status === "starting";
    stopButton.hidden = !live;
    document.getElementById("try-image").disabled = endpoint.status !== "running";
    zone.classList.toggle("disabled", endpoint.status !== "running");
    snippets(endpoint);
    return true;
  }, 1500);
})();
