// nmodal search page: plain JavaScript, no build step, talks to the /api endpoints.
// Untrusted post content is only ever inserted with textContent (never innerHTML).
"use strict";

const $ = (id) => document.getElementById(id);
let info = null;

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function filterParams() {
  const params = new URLSearchParams();
  params.set("k", $("k").value || "20");
  params.set("collate", $("collate").value);
  for (const option of $("accounts").selectedOptions) params.append("account", option.value);
  if ($("since").value) params.set("since", $("since").value);
  if ($("until").value) params.set("until", $("until").value);
  const boxes = Array.from(document.querySelectorAll("#modalities input"));
  const checked = boxes.filter((b) => b.checked).map((b) => b.value);
  if (checked.length && checked.length < boxes.length) params.set("modality", checked.join(","));
  if (!$("nprobe-label").hidden && $("nprobe").value) params.set("nprobe", $("nprobe").value);
  return params;
}

function setStatus(text) { $("status").textContent = text; }

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
}

async function call(url, options) {
  $("error").hidden = true;
  setStatus("searching…");
  const started = performance.now();
  let response;
  try {
    response = await fetch(url, options);
  } catch (err) {
    setStatus("");
    showError("The server could not be reached: " + err);
    return null;
  }
  let body = null;
  try { body = await response.json(); } catch (err) { body = null; }
  if (!response.ok) {
    setStatus("");
    const detail = body && body.detail ? body.detail : response.statusText;
    showError(`Error ${response.status}: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`);
    return null;
  }
  setStatus(`${body.hits.length} posts in ${Math.round(performance.now() - started)} ms` +
            (body.exact ? "" : " (approximate)"));
  return body;
}

function formatDate(value) {
  if (!value) return "no date";
  return value.replace("T", " ").slice(0, 16);
}

function showQuery(parts) {
  const box = $("query-info");
  box.replaceChildren(...parts);
  box.hidden = false;
}

function renderResults(result) {
  const list = $("results");
  list.replaceChildren();
  if (!result.hits.length) {
    list.appendChild(el("li", "empty", "No posts match."));
    return;
  }
  for (const hit of result.hits) {
    const post = hit.post;
    const item = el("li", "result");
    item.tabIndex = 0;
    item.dataset.postId = hit.post_id;
    item.title = "Click to find posts like this one";
    if (post.urls && post.urls.thumbnail) {
      // without an image or video the thumbnail is a waveform of the audio
      const wave = !post.urls.image && !post.urls.video && Boolean(post.urls.audio);
      const img = el("img", wave ? "thumb wave" : "thumb");
      img.loading = "lazy";
      img.alt = (wave ? "waveform of " : "thumbnail of ") + hit.post_id;
      img.src = post.urls.thumbnail;
      item.appendChild(img);
    } else {
      item.appendChild(el("div", "thumb none", (post.artifacts || []).join(" + ") || "no media"));
    }
    const body = el("div", "body");
    const meta = el("div", "meta");
    meta.appendChild(el("span", "rank", "#" + hit.rank));
    meta.appendChild(el("span", "score", "score " + hit.score.toFixed(3)));
    meta.appendChild(el("span", "account", post.account || "unknown account"));
    meta.appendChild(el("span", "date", formatDate(post.date)));
    meta.appendChild(el("span", "post-id", hit.post_id));
    body.appendChild(meta);
    body.appendChild(el("p", "text", post.text || ""));
    const matches = el("div", "matches");
    for (const m of hit.matches) {
      matches.appendChild(el("span", "badge", `${m.query} → ${m.artifact} ${m.score.toFixed(3)}`));
    }
    body.appendChild(matches);
    if (post.urls && post.urls.audio) {
      // fetched only when played; clicks and keys on it do not open "more like this"
      const player = el("audio", "player");
      player.controls = true;
      player.preload = "none";
      player.src = post.urls.audio;
      player.setAttribute("aria-label", "audio of " + hit.post_id);
      player.addEventListener("click", (event) => event.stopPropagation());
      player.addEventListener("keydown", (event) => event.stopPropagation());
      body.appendChild(player);
    }
    const links = el("div", "media-links");
    for (const kind of ["image", "video", "audio"]) {
      if (post.urls && post.urls[kind]) {
        const a = el("a", "", "open " + kind);
        a.href = post.urls[kind];
        a.target = "_blank";
        a.rel = "noopener";
        a.addEventListener("click", (event) => event.stopPropagation());
        links.appendChild(a);
      }
    }
    body.appendChild(links);
    item.appendChild(body);
    const open = () => { location.hash = "post=" + encodeURIComponent(hit.post_id); };
    item.addEventListener("click", open);
    item.addEventListener("keydown", (event) => { if (event.key === "Enter") open(); });
    list.appendChild(item);
  }
}

async function searchText(text) {
  const params = filterParams();
  params.set("text", text);
  showQuery([el("span", "", "Text query: "), el("span", "qtext", text)]);
  const result = await call("/api/search?" + params.toString());
  if (result) renderResults(result);
}

async function searchPost(postId) {
  const params = filterParams();
  params.set("post_id", postId);
  showQuery([el("span", "", "Posts like "), el("strong", "", postId)]);
  const result = await call("/api/similar?" + params.toString());
  if (!result) return;
  const q = result.query_post;
  showQuery([
    el("span", "", "Posts like "), el("strong", "", postId),
    el("span", "", ` (${q.account || "unknown account"}, ${formatDate(q.date)}): `),
    el("span", "qtext", (q.text || "").slice(0, 300)),
  ]);
  renderResults(result);
}

async function searchFile(file) {
  if (info && file.size > info.max_upload_bytes) {
    showError(`${file.name} is ${(file.size / 1048576).toFixed(1)} MB; the limit is ` +
              `${(info.max_upload_bytes / 1048576).toFixed(0)} MB.`);
    return;
  }
  const form = new FormData();
  form.append("file", file, file.name);
  showQuery([el("span", "", "File query: "), el("strong", "", file.name)]);
  const result = await call("/api/search/file?" + filterParams().toString(), { method: "POST", body: form });
  if (!result) return;
  showQuery([el("span", "", `File query (${result.upload.kind}, ${result.upload.format}): `), el("strong", "", file.name)]);
  renderResults(result);
}

function route() {
  const hash = location.hash.slice(1);
  if (hash.startsWith("post=")) {
    searchPost(decodeURIComponent(hash.slice(5)));
  } else if (hash.startsWith("q=")) {
    const text = decodeURIComponent(hash.slice(2));
    $("query").value = text;
    searchText(text);
  }
}

async function init() {
  try {
    const response = await fetch("/api/info");
    info = await response.json();
  } catch (err) {
    showError("The server could not be reached: " + err);
    return;
  }
  setStatus(`${info.posts} posts indexed`);
  for (const account of info.accounts) {
    const option = el("option", "", account);
    option.value = account;
    $("accounts").appendChild(option);
  }
  for (const modality of info.modalities) {
    const label = el("label");
    const box = el("input");
    box.type = "checkbox";
    box.value = modality;
    box.checked = true;
    label.appendChild(box);
    label.appendChild(document.createTextNode(modality));
    $("modalities").appendChild(label);
  }
  // approximate (IVF) indexes: how many inverted lists a query visits, up to the largest
  const ivf = Object.values(info.index || {}).filter((i) => i.nlist);
  if (ivf.length) {
    const box = $("nprobe");
    box.max = String(Math.max(...ivf.map((i) => i.nlist)));
    box.placeholder = `${Math.max(...ivf.map((i) => i.nprobe))} (of ${box.max})`;
    $("nprobe-label").hidden = false;
  }
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("query").value.trim();
    if (!text) return;
    const target = "q=" + encodeURIComponent(text);
    if (location.hash.slice(1) === target) searchText(text);
    else location.hash = target;
  });
  const zone = $("dropzone");
  const input = $("file-input");
  zone.addEventListener("click", () => input.click());
  zone.addEventListener("keydown", (event) => { if (event.key === "Enter") input.click(); });
  input.addEventListener("change", () => { if (input.files.length) searchFile(input.files[0]); input.value = ""; });
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    if (event.dataTransfer.files.length) searchFile(event.dataTransfer.files[0]);
  });
  window.addEventListener("hashchange", route);
  route();
}

init();
