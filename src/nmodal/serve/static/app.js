// nmodal search page: plain JavaScript, no build step, talks to the /api endpoints.
// Untrusted post content is only ever inserted with textContent (never innerHTML), links
// only from URLs that parse as http(s), and no inline script or style is used (the page
// works under a strict Content-Security-Policy).
"use strict";

const $ = (id) => document.getElementById(id);
const MAX_K = 500; // the API's largest page
const MEDIA = ["image", "video", "audio"];
let info = null;

// ---------------------------------------------------------------------------- helpers

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function formatDate(value) {
  if (!value) return "no date";
  return String(value).replace("T", " ").slice(0, 16);
}

function setStatus(text) { $("status").textContent = text; }

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
}

function errorText(detail) {
  // FastAPI's validation errors are a list of {loc, msg, input}: say which field and why,
  // never echo the input back (it may be a 10,000-character query)
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((d) => {
      const field = Array.isArray(d.loc) ? d.loc[d.loc.length - 1] : "request";
      return `${field}: ${d.msg || "invalid"}`;
    }).join("; ");
  }
  return "the request was refused";
}

function indexedStatus() { if (info) setStatus(`${info.posts} posts indexed`); }

function safeHref(value) {
  // only absolute http(s) links from post data become links
  try {
    const url = new URL(String(value));
    return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
  } catch (err) {
    return null;
  }
}

// ------------------------------------------------------------------------------- state
// The whole query is in the URL's hash, so a reload or a shared link repeats it:
//   #q=TEXT | #like=POST_ID[&artifact=text|image|video|audio] | #file=NAME
//   &k=20&account=a&account=b&since=...&until=...&forwards=only|none&from=ORIGIN
//   &modality=text,image&collate=sum
//   &same=0&nprobe=16   and &open=POST_ID while a post's detail view is open.

const QUERY_KEYS = ["q", "like", "artifact", "file"];
const SETTING_KEYS = ["k", "account", "since", "until", "forwards", "from", "modality", "collate",
  "same", "nprobe"];

function hashParams() {
  const params = new URLSearchParams(location.hash.slice(1));
  if (params.has("post")) { // links from older versions of the page: #post=ID
    params.set("like", params.get("post"));
    params.delete("post");
  }
  return params;
}

function settingsFromControls() {
  const params = new URLSearchParams();
  params.set("k", String(pageSize()));
  for (const option of $("accounts").selectedOptions) params.append("account", option.value);
  if ($("since").value) params.set("since", $("since").value);
  if ($("until").value) params.set("until", $("until").value);
  if ($("forwards").value !== "any") params.set("forwards", $("forwards").value);
  if ($("forwarded-from").value.trim()) params.set("from", $("forwarded-from").value.trim());
  const boxes = Array.from(document.querySelectorAll("#modalities input"));
  const checked = boxes.filter((b) => b.checked).map((b) => b.value);
  if (checked.length && checked.length < boxes.length) params.set("modality", checked.join(","));
  if ($("collate").value !== "max") params.set("collate", $("collate").value);
  if (!$("same").checked) params.set("same", "0");
  if (!$("nprobe-label").hidden && $("nprobe").value) params.set("nprobe", $("nprobe").value);
  return params;
}

function controlsFromSettings(params) {
  $("k").value = params.get("k") || "20";
  const accounts = new Set(params.getAll("account"));
  for (const option of $("accounts").options) option.selected = accounts.has(option.value);
  $("since").value = params.get("since") || "";
  $("until").value = params.get("until") || "";
  $("forwards").value = ["only", "none"].includes(params.get("forwards")) ? params.get("forwards") : "any";
  $("forwarded-from").value = params.get("from") || "";
  const mods = params.get("modality");
  const wanted = mods ? new Set(mods.split(",")) : null;
  for (const box of document.querySelectorAll("#modalities input")) {
    box.checked = wanted === null || wanted.has(box.value);
  }
  $("collate").value = ["sum", "mean"].includes(params.get("collate")) ? params.get("collate") : "max";
  $("same").checked = params.get("same") !== "0";
  $("nprobe").value = params.get("nprobe") || "";
  if (params.getAll("account").length || params.get("since") || params.get("until") || mods ||
      params.get("forwards") || params.get("from") ||
      params.get("nprobe") || params.get("same") || params.get("collate")) {
    $("filters").open = true; // a restored filter is visible, not hidden in a closed box
  }
}

function pageSize() {
  const k = parseInt($("k").value, 10);
  const size = Number.isFinite(k) && k >= 1 ? Math.min(k, MAX_K) : 20;
  if (String(size) !== $("k").value) $("k").value = String(size); // say what is used
  return size;
}

function queryKey(params) {
  const copy = new URLSearchParams(params);
  copy.delete("open");
  return copy.toString();
}

function navigate(params) {
  const target = params.toString();
  if (location.hash.slice(1) === target) route(true);
  else location.hash = target;
}

function newQuery(query) {
  const params = new URLSearchParams(query);
  for (const [key, value] of settingsFromControls()) params.append(key, value);
  navigate(params);
}

// ------------------------------------------------------------------------- requests

const current = {
  key: null,       // the query the page shows (hash without "open")
  params: null,    // its URLSearchParams
  shown: 0,        // how many posts were asked for (grows with "load more")
  result: null,    // the last response
  file: null,      // the uploaded file (a File or Blob) of a file query
  describe: null,  // what the query was, for the exports
};
let pendingFile = null; // a file just chosen, for the #file=NAME query it starts

function apiParams(params, k) {
  const api = new URLSearchParams();
  api.set("k", String(k));
  for (const account of params.getAll("account")) api.append("account", account);
  for (const key of ["since", "until", "modality", "collate", "nprobe", "forwards"]) {
    if (params.get(key)) api.set(key, params.get(key));
  }
  if (params.get("from")) api.set("forwarded_from", params.get("from"));
  api.set("include_same", params.get("same") === "0" ? "false" : "true");
  return api;
}

async function call(url, options) {
  const started = performance.now();
  let response;
  try {
    response = await fetch(url, options);
  } catch (err) {
    showError("The server could not be reached: " + err);
    return null;
  }
  let body = null;
  try { body = await response.json(); } catch (err) { body = null; }
  if (!response.ok) {
    const detail = body && body.detail ? body.detail : response.statusText;
    showError(`Error ${response.status}: ${errorText(detail)}`);
    return null;
  }
  body.elapsed_ms = Math.round(performance.now() - started);
  return body;
}

async function fetchPost(postId) {
  return call("/api/post?post_id=" + encodeURIComponent(postId));
}

function showQuery(parts) {
  const box = $("query-info");
  box.replaceChildren(...parts);
  box.hidden = false;
}

function clearResults() {
  $("error").hidden = true;
  $("error").textContent = "";
  $("results").replaceChildren();
  $("toolbar").hidden = true;
  $("more").hidden = true;
  $("query-info").hidden = true;
  current.result = null;
}

async function uploadSearch(file, name, params, k, kind) {
  const form = new FormData();
  form.append("file", file, name);
  if (kind) form.append("kind", kind);
  return call("/api/search/file?" + apiParams(params, k).toString(), { method: "POST", body: form });
}

async function fetchResult(params, k) {
  // one page of the query in params (k posts); sets current.describe
  if (params.get("q")) {
    const text = params.get("q");
    current.describe = { kind: "text", text };
    const api = apiParams(params, k);
    api.set("text", text);
    return call("/api/search?" + api.toString());
  }
  if (params.get("like")) {
    const postId = params.get("like");
    const artifact = params.get("artifact");
    current.describe = { kind: "post", post_id: postId, artifact: artifact || "all" };
    // the post's artifacts (or one of them) as the index stored them are the query; the
    // post itself is left out either way
    const api = apiParams(params, k);
    api.set("post_id", postId);
    if (artifact) api.set("artifact", artifact);
    return call("/api/similar?" + api.toString());
  }
  if (params.get("file")) {
    const name = params.get("file");
    current.describe = { kind: "file", name };
    if (!current.file) {
      showError(`The file ${name} is not kept by the page: drop or choose it again to repeat this search (filters are restored).`);
      return null;
    }
    if (info && current.file.size > info.max_upload_bytes) {
      showError(`${name} is ${(current.file.size / 1048576).toFixed(1)} MB; the limit is ` +
                `${(info.max_upload_bytes / 1048576).toFixed(0)} MB.`);
      return null;
    }
    return uploadSearch(current.file, name, params, k, null);
  }
  return null;
}

function describeQuery(params, result) {
  if (params.get("q")) {
    return [el("span", "", "Text query: "), el("span", "qtext", params.get("q"))];
  }
  if (params.get("like")) {
    const postId = params.get("like");
    const artifact = params.get("artifact");
    const parts = [el("span", "", "Posts like "), el("strong", "", postId)];
    if (artifact) parts.push(el("span", "", ` (its ${artifact} only)`));
    const q = result && result.query_post;
    if (q) {
      parts.push(el("span", "", ` (${q.account || "unknown account"}, ${formatDate(q.date)}): `));
      // one line of the post's text: the results stay in view
      const text = el("span", "qtext qline", (q.text || "(no text)").replace(/\s+/g, " ").slice(0, 300));
      text.dir = "auto";
      parts.push(text);
    }
    return parts;
  }
  const name = params.get("file");
  if (result && result.upload) {
    return [el("span", "", `File query (${result.upload.kind}, ${result.upload.format}): `), el("strong", "", name)];
  }
  return [el("span", "", "File query: "), el("strong", "", name)];
}

async function runQuery(params) {
  clearResults();
  if (!params.get("q") && !params.get("like") && !params.get("file")) {
    if (info) setStatus(`${info.posts} posts indexed`);
    return;
  }
  current.params = params;
  current.shown = pageSize();
  if (params.get("file") && pendingFile && pendingFile.name === params.get("file")) {
    current.file = pendingFile;
  } else {
    current.file = null;
  }
  pendingFile = null;
  showQuery(describeQuery(params, null));
  setStatus("searching…");
  const key = current.key;
  const result = await fetchResult(params, current.shown);
  if (key !== current.key) return; // a newer query started meanwhile
  if (!result) { indexedStatus(); return; }
  showResult(params, result);
}

function showResult(params, result) {
  current.result = result;
  showQuery(describeQuery(params, result));
  setStatus(`${result.hits.length} posts in ${result.elapsed_ms} ms` + (result.exact ? "" : " (approximate)"));
  renderResults(result);
  $("toolbar").hidden = result.hits.length === 0;
  const full = result.hits.length >= current.shown;
  $("more").hidden = !full || result.hits.length === 0;
  $("load-more").disabled = current.shown >= MAX_K;
  $("more-note").textContent = current.shown >= MAX_K ? `the top ${MAX_K} posts are the most one search returns` : "";
}

async function loadMore() {
  if (!current.result || current.shown >= MAX_K) return;
  const key = current.key;
  const selected = selectedIndex();
  current.shown = Math.min(current.shown + pageSize(), MAX_K);
  $("load-more").disabled = true;
  setStatus("loading more…");
  const result = await fetchResult(current.params, current.shown);
  if (key !== current.key) return;
  if (!result) { indexedStatus(); return; }
  showResult(current.params, result);
  const items = resultItems();
  if (items.length) items[Math.max(0, selected)].focus({ preventScroll: true });
}

// -------------------------------------------------------------------------- results

function resultItems() { return Array.from(document.querySelectorAll("#results .result")); }

function selectedIndex() {
  return resultItems().indexOf(document.activeElement);
}

async function failureReason(url) {
  // the server's reason a media URL failed (404: the file is missing; 422: undecodable)
  try {
    const response = await fetch(url);
    if (response.ok) return "the browser cannot show this file";
    let detail = null;
    try { detail = (await response.json()).detail; } catch (err) { detail = null; }
    const text = typeof detail === "string" ? detail : response.statusText;
    return text;
  } catch (err) {
    return "the server could not be reached";
  }
}

function whenBroken(node, url, replace) {
  // on a load error, ask the server why and show it in place of (or beside) the media
  node.addEventListener("error", async () => {
    const reason = await failureReason(url);
    replace(reason);
  }, { once: true });
  return node;
}

function thumbnail(post, postId) {
  if (post.urls && post.urls.thumbnail) {
    // without an image or video the thumbnail is a waveform of the audio
    const wave = !post.urls.image && !post.urls.video && Boolean(post.urls.audio);
    const img = el("img", wave ? "thumb wave" : "thumb");
    img.loading = "lazy";
    img.alt = (wave ? "waveform of " : "thumbnail of ") + postId;
    whenBroken(img, post.urls.thumbnail, (reason) => {
      const kind = post.urls.image ? "image" : post.urls.video ? "video" : "audio";
      const box = el("div", "thumb none broken", `${kind} unavailable`);
      box.title = reason;
      box.setAttribute("aria-label", `${kind} of ${postId} unavailable: ${reason}`);
      img.replaceWith(box);
    });
    img.src = post.urls.thumbnail;
    return img;
  }
  return el("div", "thumb none", (post.artifacts || []).join(" + ") || "no media");
}

function quiet(node) {
  // clicks and keys on a control inside a result do not open the result
  node.addEventListener("click", (event) => event.stopPropagation());
  node.addEventListener("keydown", (event) => event.stopPropagation());
  return node;
}

function renderResults(result) {
  const list = $("results");
  list.replaceChildren();
  if (!result.hits.length) {
    // a filter value no post has (a hand-edited or old link) is said, not just empty
    const why = [];
    if (result.unknown_accounts) why.push("no account named " + result.unknown_accounts.join(", "));
    if (result.unknown_origins) why.push("no forward from " + result.unknown_origins.join(", "));
    list.appendChild(el("li", "empty", "No posts match." + (why.length ? ` This index has ${why.join("; ")}.` : "")));
    return;
  }
  const self = current.params && current.params.get("like");
  for (const hit of result.hits) {
    const post = hit.post || {};
    const item = el("li", "result");
    item.tabIndex = 0;
    item.dataset.postId = hit.post_id;
    item.title = "Open this post (Enter)";
    item.appendChild(thumbnail(post, hit.post_id));
    const body = el("div", "body");
    const meta = el("div", "meta");
    meta.appendChild(el("span", "rank", "#" + hit.rank));
    meta.appendChild(el("span", "score", "score " + hit.score.toFixed(3)));
    meta.appendChild(el("span", "account", post.account || "unknown account"));
    meta.appendChild(el("span", "date", formatDate(post.date)));
    meta.appendChild(el("span", "post-id", hit.post_id));
    if (hit.post_id === self) meta.appendChild(el("span", "self", "this post"));
    if (post.forwarded_from) meta.appendChild(el("span", "fwd", "forwarded from " + post.forwarded_from));
    body.appendChild(meta);
    const text = el("p", "text", post.text || "");
    text.dir = "auto";
    body.appendChild(text);
    const matches = el("div", "matches");
    for (const m of hit.matches || []) {
      matches.appendChild(el("span", "badge", `${m.query} → ${m.artifact} ${m.score.toFixed(3)}`));
    }
    body.appendChild(matches);
    if (post.urls && post.urls.audio && !post.audio_from_video) {
      // fetched only when played (a video's own sound track plays in the video)
      const player = quiet(el("audio", "player"));
      player.controls = true;
      player.preload = "none";
      player.src = post.urls.audio;
      player.setAttribute("aria-label", "audio of " + hit.post_id);
      body.appendChild(player);
    }
    const links = el("div", "media-links");
    const like = quiet(el("button", "link-button more-like", "more like this"));
    like.type = "button";
    like.addEventListener("click", () => newQuery({ like: hit.post_id }));
    links.appendChild(like);
    for (const kind of MEDIA) {
      if (kind === "audio" && post.audio_from_video) continue; // the same file as "open video"
      if (post.urls && post.urls[kind]) {
        const a = quiet(el("a", "", "open " + kind));
        a.href = post.urls[kind];
        a.target = "_blank";
        a.rel = "noopener";
        links.appendChild(a);
      }
    }
    body.appendChild(links);
    item.appendChild(body);
    item.addEventListener("click", () => {
      // selecting text to copy it is not a click on the post
      const selection = window.getSelection();
      if (selection && !selection.isCollapsed && item.contains(selection.anchorNode)) return;
      openPost(hit.post_id);
    });
    item.addEventListener("keydown", (event) => {
      if (event.key === "Enter") { event.preventDefault(); openPost(hit.post_id); }
    });
    list.appendChild(item);
  }
}

// ---------------------------------------------------------------------- detail view

// provenance fields of the post schema, in the order an analyst reads them
const PROVENANCE = [
  ["channel_username", "channel"],
  ["channel_id", "channel id"],
  ["message_id", "message id"],
  ["author", "signed by"],
  ["from_name", "sent by"],
  ["from_id", "sender id"],
  ["forwarded_from", "forwarded from"],
  ["forwarded_from_id", "forwarded from id"],
  ["forwarded_date", "original date"],
  ["forwarded_message_id", "original message id"],
  ["reply_to_message_id", "reply to message"],
  ["album_id", "album"],
  ["edited", "edited"],
  ["views", "views"],
  ["forwards", "times forwarded"],
  ["reactions", "reactions"],
  ["media_type", "media type"],
  ["duration", "duration"],
  ["source", "source"],
];
// shown elsewhere in the view, or internal
const NOT_FIELDS = new Set(["post_id", "account", "date", "text", "urls", "artifacts", "url",
  "image_path", "video_path", "audio_path", "media_root", "status", "reason", "elapsed_ms",
  "notes", "skipped_media", "audio_from_video"]);

function postLink(post) {
  const direct = post.url ? safeHref(post.url) : null;
  if (direct) return direct;
  if (post.channel_username && post.message_id !== undefined && post.message_id !== null) {
    return safeHref(`https://t.me/${encodeURIComponent(post.channel_username)}/${encodeURIComponent(post.message_id)}`);
  }
  return null;
}

function fieldValue(key, value) {
  if (value === null || value === undefined || value === "") return null;
  if (key === "reactions") {
    try {
      const parsed = typeof value === "string" ? JSON.parse(value) : value;
      if (parsed && typeof parsed === "object") {
        return Object.entries(parsed).map(([r, n]) => `${r} ${n}`).join("  ");
      }
    } catch (err) { /* shown as it is */ }
  }
  if (/date|edited/.test(key)) return formatDate(value);
  if (key === "duration" && Number.isFinite(Number(value))) return formatDuration(Number(value));
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

function formatDuration(seconds) {
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  const total = Math.round(seconds);
  const h = Math.floor(total / 3600), m = Math.floor((total % 3600) / 60), sec = total % 60;
  const mm = h ? String(m).padStart(2, "0") : String(m);
  return `${h ? h + ":" : ""}${mm}:${String(sec).padStart(2, "0")}`;
}

function replyPostId(postId, message) {
  // post ids of exports are <chat>/<message>: the replied-to post is in the same chat
  const slash = String(postId).lastIndexOf("/");
  return slash > 0 ? `${String(postId).slice(0, slash)}/${message}` : null;
}

function fieldRows(post) {
  const rows = [];
  const seen = new Set();
  for (const [key, label] of PROVENANCE) {
    seen.add(key);
    const value = fieldValue(key, post[key]);
    if (value !== null) rows.push([key, label, value]);
  }
  for (const key of Object.keys(post).sort()) {
    if (seen.has(key) || NOT_FIELDS.has(key)) continue;
    const value = fieldValue(key, post[key]);
    if (value !== null) rows.push([key, key.replace(/_/g, " "), value]);
  }
  return rows;
}

function mediaElement(kind, url, postId) {
  const node = kind === "image" ? el("img", "detail-image") : el(kind, "detail-" + kind);
  whenBroken(node, url, (reason) => {
    node.replaceWith(el("p", "bad media-broken", `The ${kind} cannot be shown (${reason}).`));
  });
  if (kind === "image") {
    node.alt = "image of " + postId;
  } else {
    node.controls = true;
    node.preload = "metadata";
    node.setAttribute("aria-label", `${kind} of ${postId}`);
  }
  node.src = url;
  return node;
}

let detailFor = null;
let detailReturn = null;

async function showDetail(postId) {
  if (detailFor === postId && !$("detail").hidden) return;
  detailFor = postId;
  if ($("detail").hidden) detailReturn = document.activeElement;
  const body = $("detail-body");
  body.replaceChildren(el("p", "muted", "loading…"));
  $("detail-title").textContent = postId;
  $("detail").hidden = false;
  $("detail-backdrop").hidden = false;
  document.body.classList.add("has-detail");
  $("detail").focus();
  const post = await fetchPost(postId);
  if (detailFor !== postId) return;
  if (!post) {
    body.replaceChildren(el("p", "bad", `Post ${postId} cannot be shown (see the error above).`));
    return;
  }
  $("detail-title").textContent = `${post.account || "unknown account"} · ${formatDate(post.date)}`;
  const parts = [];
  const head = el("div", "meta");
  head.appendChild(el("span", "post-id", postId));
  const link = postLink(post);
  if (link) {
    const a = el("a", "tme", "open the original post ↗");
    a.href = link;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    head.appendChild(a);
  } else {
    head.appendChild(el("span", "muted", "no link to the original post"));
  }
  parts.push(head);
  const text = el("p", "detail-text", post.text || "(no text)");
  text.dir = "auto";
  parts.push(text);
  const media = el("div", "detail-media");
  for (const kind of MEDIA) {
    if (kind === "audio" && post.audio_from_video) continue; // it plays in the video
    if (post.urls && post.urls[kind]) media.appendChild(mediaElement(kind, post.urls[kind], postId));
  }
  if (media.childElementCount) parts.push(media);
  if (post.notes || post.skipped_media) {
    // what the export lacked or what is not searchable: "no media" is not "media missing"
    const notes = el("div", "media-notes");
    if (post.notes) notes.appendChild(el("p", "", "Media notes: " + post.notes));
    if (post.skipped_media) notes.appendChild(el("p", "", "Not searchable here: " + post.skipped_media));
    parts.push(notes);
  }
  const rows = fieldRows(post);
  if (rows.length) {
    const table = el("table", "fields");
    for (const [key, label, value] of rows) {
      const tr = el("tr");
      tr.dataset.field = key;
      tr.appendChild(el("th", "", label));
      const td = el("td", "", key === "reply_to_message_id" ? null : value);
      td.dir = "auto";
      const target = key === "reply_to_message_id" ? replyPostId(postId, value) : null;
      if (target) {
        const a = el("a", "reply-link", value);
        a.href = "#open=" + encodeURIComponent(target);
        a.title = "open the post it replies to";
        a.addEventListener("click", (event) => { event.preventDefault(); openPost(target); });
        td.appendChild(a);
      } else if (key === "reply_to_message_id") {
        td.textContent = value;
      }
      tr.appendChild(td);
      table.appendChild(tr);
    }
    parts.push(table);
  } else {
    parts.push(el("p", "muted", "The collection records no provenance for this post (forwards, replies, album)."));
  }
  const actions = el("div", "detail-actions");
  actions.appendChild(el("span", "muted", "More like this: "));
  const all = el("button", "secondary like-all", "all its artifacts");
  all.type = "button";
  all.addEventListener("click", () => newQuery({ like: postId }));
  actions.appendChild(all);
  for (const artifact of post.artifacts || []) {
    const button = el("button", "secondary like-artifact", `its ${artifact}`);
    button.type = "button";
    button.dataset.artifact = artifact;
    button.addEventListener("click", () => newQuery({ like: postId, artifact }));
    actions.appendChild(button);
  }
  parts.push(actions);
  body.replaceChildren(...parts);
}

function hideDetail() {
  detailFor = null;
  if ($("detail").hidden) return;
  for (const player of document.querySelectorAll("#detail video, #detail audio")) player.pause();
  $("detail").hidden = true;
  $("detail-backdrop").hidden = true;
  document.body.classList.remove("has-detail");
  $("detail-body").replaceChildren();
  if (detailReturn && document.contains(detailReturn)) detailReturn.focus({ preventScroll: true });
  detailReturn = null;
}

function openPost(postId) {
  const params = hashParams();
  params.set("open", postId);
  location.hash = params.toString();
}

function closePost() {
  const params = hashParams();
  if (!params.has("open")) { hideDetail(); return; }
  params.delete("open");
  location.hash = params.toString();
}

// --------------------------------------------------------------------------- export

function exportRows() {
  const result = current.result;
  return result.hits.map((hit) => {
    const post = hit.post || {};
    return {
      rank: hit.rank,
      post_id: hit.post_id,
      score: hit.score,
      account: post.account ?? "",
      date: post.date ?? "",
      url: postLink(post) ?? "",
      text: post.text ?? "",
      forwarded_from: post.forwarded_from ?? "",
      reply_to_message_id: post.reply_to_message_id ?? "",
      album_id: post.album_id ?? "",
      artifacts: (post.artifacts || []).join("+"),
      matches: (hit.matches || []).map((m) => `${m.query}->${m.artifact}:${m.score.toFixed(4)}`).join(" "),
    };
  });
}

function exportSettings() {
  const p = current.params;
  return {
    k: current.shown,
    accounts: p.getAll("account"),
    since: p.get("since") || null,
    until: p.get("until") || null,
    modalities: p.get("modality") ? p.get("modality").split(",") : null,
    collate: p.get("collate") || "max",
    include_same: p.get("same") !== "0",
    nprobe: p.get("nprobe") ? Number(p.get("nprobe")) : null,
    exact: current.result.exact,
    link: location.href.split("#")[0] + "#" + queryKey(p),
  };
}

function csvCell(value) {
  let text = value === null || value === undefined ? "" : String(value);
  // a cell a spreadsheet would run as a formula is written as text
  if (/^[=+\-@\t\r]/.test(text)) text = "'" + text;
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

function download(name, type, content) {
  const blob = new Blob([content], { type });
  const a = el("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

function exportName(ext) {
  const stamp = new Date().toISOString().replace(/[-:]/g, "").slice(0, 15);
  return `nmodal-results-${stamp}.${ext}`;
}

function exportCsv() {
  if (!current.result) return;
  const rows = exportRows();
  const query = JSON.stringify(current.describe);
  const settings = JSON.stringify(exportSettings());
  const columns = [...Object.keys(rows[0] || { rank: 0 }), "query", "settings"];
  const lines = [columns.join(",")];
  for (const row of rows) {
    lines.push([...Object.values(row), query, settings].map(csvCell).join(","));
  }
  download(exportName("csv"), "text/csv;charset=utf-8", "\ufeff" + lines.join("\r\n") + "\r\n");
}

function exportJson() {
  if (!current.result) return;
  const doc = {
    exported: new Date().toISOString(),
    query: current.describe,
    settings: exportSettings(),
    total_posts: current.result.total_posts,
    hits: current.result.hits.map((hit) => ({ ...hit, post: { ...hit.post, link: postLink(hit.post || {}) } })),
  };
  download(exportName("json"), "application/json", JSON.stringify(doc, null, 2) + "\n");
}

// ------------------------------------------------------------------------- keyboard

function typing(target) {
  return target instanceof HTMLElement &&
    (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
}

function moveSelection(step) {
  const items = resultItems();
  if (!items.length) return;
  const at = selectedIndex();
  const next = at < 0 ? (step > 0 ? 0 : items.length - 1) : Math.min(Math.max(at + step, 0), items.length - 1);
  items[next].focus();
  items[next].scrollIntoView({ block: "nearest" });
}

function trapFocus(event) {
  // Tab and Shift+Tab cycle inside the open post view (a modal dialog)
  const dialog = $("detail");
  const focusable = Array.from(dialog.querySelectorAll(
    "a[href], button:not([disabled]), input, select, video[controls], audio[controls], [tabindex]:not([tabindex='-1'])"
  )).filter((node) => node.offsetParent !== null || node === document.activeElement);
  if (!focusable.length) { event.preventDefault(); dialog.focus(); return; }
  const first = focusable[0], last = focusable[focusable.length - 1];
  const inside = dialog.contains(document.activeElement);
  if (event.shiftKey && (!inside || document.activeElement === first || document.activeElement === dialog)) {
    event.preventDefault();
    last.focus();
  } else if (!event.shiftKey && (!inside || document.activeElement === last)) {
    event.preventDefault();
    first.focus();
  }
}

function onKey(event) {
  if (event.key === "Tab" && !$("detail").hidden) { trapFocus(event); return; }
  if (event.key === "Escape") {
    if (!$("detail").hidden) { event.preventDefault(); closePost(); }
    else if (typing(event.target)) event.target.blur();
    return;
  }
  if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
  if (!$("detail").hidden) return; // keys below act on the result list
  if (event.key === "/") {
    event.preventDefault();
    $("query").focus();
    $("query").select();
  } else if (event.key === "j") {
    event.preventDefault();
    moveSelection(1);
  } else if (event.key === "k") {
    event.preventDefault();
    moveSelection(-1);
  }
}

// ---------------------------------------------------------------------------- route

async function route(force) {
  const params = hashParams();
  const key = queryKey(params);
  if (force === true || key !== current.key) {
    current.key = key;
    controlsFromSettings(params);
    if (params.get("q") !== null) $("query").value = params.get("q");
    else $("query").value = "";
    runQuery(params);
  }
  const open = params.get("open");
  if (open) showDetail(open);
  else hideDetail();
}

function looksLikeReference(text) {
  // one token (a post id such as chat/message, or a link): worth asking the index first
  return text.length <= 2048 && /^\S+$/.test(text);
}

async function submitText(text) {
  if (!text) {
    $("error").hidden = true;
    setStatus("Type words to search for, a post id or a t.me link, or drop a file below.");
    $("query").focus();
    return;
  }
  if (looksLikeReference(text)) {
    let found = null;
    try {
      const response = await fetch("/api/resolve?ref=" + encodeURIComponent(text));
      if (response.ok) found = (await response.json()).post_id;
    } catch (err) { found = null; }
    if (found) {
      // posts like it, with the post itself open on top
      $("query").value = "";
      newQuery({ like: found, open: found });
      return;
    }
  }
  newQuery({ q: text });
}

function chooseFile(file) {
  // a file query replaces the text query: the text box no longer shows the old text
  $("query").value = "";
  pendingFile = file;
  newQuery({ file: file.name });
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
    box.addEventListener("change", () => {
      const boxes = Array.from(document.querySelectorAll("#modalities input"));
      if (!boxes.some((b) => b.checked)) {
        box.checked = true; // none ticked would search nothing: keep this one
        setStatus("At least one artifact kind must be matched.");
      }
    });
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
    submitText($("query").value.trim());
  });
  const zone = $("dropzone");
  const input = $("file-input");
  const kinds = (info.query_kinds || []).filter((k) => MEDIA.includes(k));
  if (!kinds.length) {
    zone.hidden = true; // a text-only index: nothing a file could be compared with
  } else {
    input.accept = kinds.map((k) => k + "/*").join(",");
    const words = kinds.map((k) => (k === "video" ? "a video" : "an " + k));
    $("dropzone-kinds").textContent = words.length === 1 ? words[0]
      : words.slice(0, -1).join(", ") + " or " + words[words.length - 1];
  }
  zone.addEventListener("click", () => input.click());
  zone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") { event.preventDefault(); input.click(); }
  });
  input.addEventListener("change", () => { if (input.files.length) chooseFile(input.files[0]); input.value = ""; });
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    if (event.dataTransfer.files.length) chooseFile(event.dataTransfer.files[0]);
  });
  $("load-more").addEventListener("click", loadMore);
  $("export-csv").addEventListener("click", exportCsv);
  $("export-json").addEventListener("click", exportJson);
  $("detail-close").addEventListener("click", closePost);
  $("detail-backdrop").addEventListener("click", closePost);
  document.addEventListener("keydown", onKey);
  window.addEventListener("hashchange", () => route(false));
  route(false);
}

init();
