// The chat page of `convrec serve`: plain JavaScript over the HTTP API (docs/api/openapi.json), no framework,
// nothing loaded from elsewhere.
//
// - The session id is kept in localStorage: a reload (or a new tab) restores the history and the feedback
//   from GET /api/sessions/{id}; "New session" starts another one.
// - Every message gets a fresh client_message_id. When no answer comes back (the network failed, or the
//   server was restarted) the message is sent again with the SAME id: the server answers an id once and
//   returns the stored answer to a repeat, so a message is never answered twice. A 503 with Retry-After (busy,
//   or the LLM down) is retried after that many seconds, also with the same id.
// - A 401 shows the token form; the token is kept in sessionStorage (this tab only) and sent as a Bearer.
// - Everything the server sends is put into the page with textContent, never as HTML.
"use strict";

const SESSION_KEY = "convrec.session";
const TOKEN_KEY = "convrec.token";
const NETWORK_RETRIES = 5; // 1 + 2 + 4 + 8 + 8 s: about 20 s without a server before giving up
const BUSY_RETRIES = 10;
const FEEDBACK_KINDS = [["like", "Like"], ["dislike", "Dislike"], ["seen", "Seen it"]];
const UNDO = { like: "neutral", dislike: "neutral", seen: "unseen" };
// Facts of the catalogue that say nothing to a person: how often the dataset's dialogues mention the item, and
// its IMDb id (the API still returns both).
const HIDDEN_FACTS = new Set(["mentions", "imdb_id"]);

const $ = (id) => document.getElementById(id);
const ui = {
  log: $("log"), status: $("status"), announce: $("announce"), composer: $("composer"), message: $("message"),
  send: $("send"), reset: $("reset"), newSession: $("new-session"), tokenForm: $("token-form"),
  token: $("token"), tokenWhy: $("token-why"),
};

let sessionId = null;
let feedback = {}; // item_id -> {liked: true | false | null, seen: bool}, as the server last said
let sending = false;

class ApiError extends Error {
  constructor(status, code, message, requestId = "", retryAfter = null) {
    super(message);
    Object.assign(this, { status, code, requestId, retryAfter });
  }
}

// -- talking to the API --------------------------------------------------------------------------------------

function newMessageId() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID(); // only in secure contexts (https, localhost)
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

// One request: the parsed JSON, or an ApiError for an error answer. A TypeError means no (whole) answer came.
// An answer of server-sent events (the streamed message endpoint) is read as it arrives: each event but the
// last goes to onEvent(kind, data), the "answer" event's data is returned, an "error" event is thrown.
async function call(method, path, body, onEvent = null) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (response.ok && (response.headers.get("Content-Type") || "").startsWith("text/event-stream")) {
    return readEvents(response, onEvent || (() => {}));
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    if (response.ok) throw new TypeError("the answer was cut off"); // as good as no answer: send it again
  }
  if (response.ok) return data;
  const error = (data && data.error) || { code: `http_${response.status}`, message: `the server answered ${response.status}` };
  const retryAfter = Number.parseInt(response.headers.get("Retry-After") || "", 10);
  throw new ApiError(response.status, error.code, error.message, error.request_id || "",
    Number.isFinite(retryAfter) ? retryAfter : null);
}

// Server-sent events as the standard has them: lines end in LF, CR LF or CR (a proxy may rewrite them), a
// field is "name: value" or "name:value", several data lines are one value joined by LF, a block without an
// event name (a keep-alive comment) is skipped. Each attempt starts with "start": its words replace any left.
async function readEvents(response, onEvent) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let cr = ""; // a CR that ended a chunk: whether it is a line end alone or with an LF, the next chunk says
  onEvent("start", {});
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new TypeError("the answer was cut off"); // no answer event: send it again (same id)
    const raw = cr + value;
    cr = raw.endsWith("\r") ? "\r" : "";
    buffer += raw.slice(0, raw.length - cr.length).replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      let event = null;
      const data = [];
      for (const line of buffer.slice(0, end).split("\n")) {
        const colon = line.indexOf(":");
        if (colon <= 0) continue; // a comment (":...") or a line without a field
        const name = line.slice(0, colon);
        const text = line.slice(colon + 1).replace(/^ /, "");
        if (name === "event") event = text;
        else if (name === "data") data.push(text);
      }
      buffer = buffer.slice(end + 2);
      if (!event) continue;
      const parsed = JSON.parse(data.join("\n") || "{}");
      if (event === "answer") return parsed;
      if (event === "error") {
        const error = parsed.error || {};
        throw new ApiError(parsed.status || 500, error.code || "error", error.message || "the server failed",
          error.request_id || "", Number.isFinite(parsed.retry_after) ? parsed.retry_after : null);
      }
      if (event === "token" || event === "reset") onEvent(event, parsed);
    }
  }
}

// A request that waits out what can be waited out: no answer (retried with backoff), 503 with Retry-After
// (retried after it), 401 (retried once a token is given). Retrying is safe for every call the page makes:
// a message carries its id, feedback sets a mark, and a reset or a new session repeated does no harm.
async function request(method, path, body, onEvent = null) {
  let lost = 0;
  let busy = 0;
  for (;;) {
    try {
      const data = await call(method, path, body, onEvent);
      clearStatus();
      return data;
    } catch (error) {
      if (error instanceof ApiError) {
        if (error.status === 401) {
          await askForToken(sessionStorage.getItem(TOKEN_KEY) ? "The token was not accepted: " + error.message : error.message);
          continue;
        }
        if (error.status === 503 && error.retryAfter !== null && busy < BUSY_RETRIES) {
          busy += 1;
          await wait(error.retryAfter, `${capitalise(error.message)}. Trying again in ${error.retryAfter} s.`);
          continue;
        }
        throw error;
      }
      if (lost >= NETWORK_RETRIES) {
        throw new ApiError(0, "network", "The server cannot be reached; check the connection and send again.");
      }
      const seconds = Math.min(2 ** lost, 8);
      lost += 1;
      await wait(seconds, `No answer from the server. Trying again in ${seconds} s.`);
    }
  }
}

function wait(seconds, why) {
  showStatus(why, "waiting");
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, seconds) * 1000));
}

let tokenAsked = null; // one prompt for every request that got a 401 meanwhile

function askForToken(why) {
  sessionStorage.removeItem(TOKEN_KEY);
  if (!tokenAsked) {
    tokenAsked = new Promise((resolve) => {
      ui.tokenWhy.textContent = `${capitalise(why)}. Enter the server's access token.`;
      ui.tokenForm.hidden = false;
      ui.token.value = "";
      ui.token.focus();
      ui.tokenForm.onsubmit = (event) => {
        event.preventDefault();
        const token = ui.token.value.trim();
        if (!token) return;
        sessionStorage.setItem(TOKEN_KEY, token);
        ui.tokenForm.hidden = true;
        tokenAsked = null;
        resolve();
        ui.message.focus();
      };
    });
  }
  return tokenAsked;
}

// -- status line ---------------------------------------------------------------------------------------------

function showStatus(text, kind = "error") {
  ui.status.textContent = text;
  ui.status.dataset.kind = kind;
  ui.status.hidden = false;
}

function clearStatus() {
  ui.status.hidden = true;
  ui.status.textContent = "";
}

function showError(error) {
  const id = error.requestId ? ` (request ${error.requestId})` : "";
  showStatus(`${capitalise(error.message || String(error))}${id}`);
}

const capitalise = (text) => text.charAt(0).toUpperCase() + text.slice(1);

// -- drawing -------------------------------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function factText(value) {
  return Array.isArray(value) ? value.join(", ") : String(value);
}

function card(rec) {
  const facts = el("dl", { class: "facts" });
  let plot = null;
  for (const [key, value] of Object.entries(rec.facts || {})) {
    if (value === null || value === "" || (Array.isArray(value) && !value.length) || HIDDEN_FACTS.has(key)) continue;
    if (key === "plot" && typeof value === "string") {
      plot = el("p", { class: "plot", text: value });
      continue;
    }
    facts.append(el("dt", { text: key.replaceAll("_", " ") }), el("dd", { text: factText(value) }));
  }
  const title = el("h3", { class: "card-title" }, rec.title);
  if (rec.year !== null && rec.year !== undefined) title.append(" ", el("span", { class: "year", text: `(${rec.year})` }));
  const buttons = el("div", { class: "feedback", role: "group", "aria-label": `Your opinion of ${rec.display_title}` });
  for (const [kind, label] of FEEDBACK_KINDS) {
    const button = el("button", { type: "button", "data-kind": kind, "aria-pressed": "false", text: label });
    // a pressed button, clicked again, takes its mark back
    button.addEventListener("click", () => giveFeedback(rec.item_id,
      button.getAttribute("aria-pressed") === "true" ? UNDO[kind] : kind, buttons));
    buttons.append(button);
  }
  const node = el("li", { class: "card", "data-item": rec.item_id },
    title, el("p", { class: "why", text: rec.why }), facts, plot, buttons);
  showFeedback(node);
  return node;
}

// The buttons say what the server last said about the item (every card of it, in every turn).
function showFeedback(node) {
  const mark = feedback[node.dataset.item] || { liked: null, seen: false };
  const pressed = { like: mark.liked === true, dislike: mark.liked === false, seen: mark.seen === true };
  for (const button of node.querySelectorAll(".feedback button")) {
    button.setAttribute("aria-pressed", String(pressed[button.dataset.kind]));
  }
}

function trace(answer) {
  if (!answer.trace || !answer.trace.length) return null;
  const total = answer.seconds !== null && answer.seconds !== undefined ? `, ${milliseconds(answer.seconds)}` : "";
  const steps = el("ol", { class: "steps" });
  for (const line of answer.trace) {
    steps.append(el("li", {},
      el("p", {}, el("strong", { text: line.stage }), ` ${milliseconds(line.seconds)}`),
      el("dl", {}, el("dt", { text: "in" }), el("dd", {}, el("pre", { text: line.input })),
        el("dt", { text: "out" }), el("dd", {}, el("pre", { text: line.output })))));
  }
  const about = [];
  if (answer.action) about.push(`action: ${answer.action}`);
  if (answer.recognised && answer.recognised.length) {
    about.push(`recognised: ${answer.recognised.map((r) => r.title).join("; ")}`);
  }
  return el("details", { class: "trace" },
    el("summary", { text: `How this answer was made (${answer.trace.length} steps${total})` }),
    about.length ? el("p", { text: about.join(" · ") }) : null, steps);
}

const milliseconds = (seconds) => (seconds < 1 ? `${(seconds * 1000).toFixed(1)} ms` : `${seconds.toFixed(2)} s`);

function fillAnswer(slot, answer) {
  const cards = el("ol", { class: "cards", "aria-label": "Recommendations" });
  for (const rec of answer.recommendations || []) cards.append(card(rec));
  slot.replaceChildren(el("p", { class: "msg bot", text: answer.reply || "" }),
    answer.recommendations && answer.recommendations.length ? cards : null, trace(answer));
}

function unanswered(slot, text, id, why = "") {
  const again = el("button", { type: "button", class: "again", text: "Send again" });
  again.addEventListener("click", () => send(text, id, slot)); // the same id: answered once, however often sent
  slot.replaceChildren(el("p", { class: "msg failed", text: why ? `Not answered: ${why}` : "Not answered." }), again);
}

function turnNode(text) {
  const slot = el("div", { class: "answer" });
  const node = el("li", { class: "turn" },
    el("p", { class: "msg user" }, el("span", { class: "visually-hidden", text: "You: " }), text), slot);
  ui.log.append(node);
  return slot;
}

function divider(label) {
  ui.log.append(el("li", { class: "divider", text: label }));
}

function render(view) {
  feedback = view.feedback || {};
  ui.log.replaceChildren();
  let conversation = null;
  for (const message of view.messages) {
    if (message.answered && conversation !== null && message.conversation !== conversation) divider("New conversation");
    const slot = turnNode(message.text);
    if (message.answered) {
      conversation = message.conversation;
      fillAnswer(slot, message);
    } else {
      unanswered(slot, message.text, message.client_message_id);
    }
  }
  if (conversation !== null && view.conversation !== conversation) divider("New conversation");
  if (!view.messages.length) hint();
}

function hint() {
  ui.log.append(el("li", { class: "hint", text: "Name a few films or books you liked, and what you are in the mood for." }));
}

// -- actions -------------------------------------------------------------------------------------------------

const sessionPath = (suffix = "") => `api/sessions/${encodeURIComponent(sessionId)}${suffix}`;

function setReady(ready) {
  for (const button of [ui.send, ui.reset, ui.newSession]) button.disabled = !ready;
}

async function startSession() {
  setReady(false);
  try {
    const created = await request("POST", "api/sessions");
    sessionId = created.session_id;
    localStorage.setItem(SESSION_KEY, sessionId);
    feedback = {};
    ui.log.replaceChildren();
    hint();
  } catch (error) {
    showError(error);
  } finally {
    setReady(true);
  }
}

async function restore() {
  sessionId = localStorage.getItem(SESSION_KEY);
  if (!sessionId) return startSession();
  setReady(false);
  try {
    render(await request("GET", sessionPath()));
    setReady(true);
  } catch (error) {
    setReady(true);
    if (error.status === 404) return startSession(); // expired or deleted: start afresh
    showError(error);
  }
}

async function send(text, id = newMessageId(), slot = null) {
  if (sending || !text.trim()) return;
  if (!sessionId) await startSession();
  if (!sessionId) return; // no session could be made: startSession said why
  sending = true;
  ui.send.disabled = true;
  ui.log.querySelector(".hint")?.remove();
  slot = slot || turnNode(text);
  slot.replaceChildren(el("p", { class: "msg pending", text: "Thinking…" }));
  slot.parentElement.scrollIntoView({ block: "nearest" });
  // The reply's words are shown as the LLM writes them, as a draft: the answer's reply replaces them (it is the
  // template reply when the check refused the words). A template reply comes whole, with the answer.
  const onEvent = (kind, data) => {
    let draft = slot.querySelector(".draft");
    if (kind === "start") { // a new attempt: what an earlier one wrote is void
      if (draft) slot.replaceChildren(el("p", { class: "msg pending", text: "Thinking…" }));
      return;
    }
    if (kind === "reset" || !draft) {
      draft = el("p", { class: "msg bot draft", "aria-hidden": "true" });
      slot.replaceChildren(draft);
    }
    if (kind === "token") draft.textContent += data.text || "";
  };
  try {
    const answer = await request("POST", sessionPath("/messages/stream"), { client_message_id: id, text }, onEvent);
    fillAnswer(slot, answer);
    ui.announce.textContent = answer.reply;
    slot.scrollIntoView({ block: "nearest" });
  } catch (error) {
    showError(error);
    unanswered(slot, text, id, error.message);
  } finally {
    sending = false;
    ui.send.disabled = false;
  }
}

async function giveFeedback(itemId, kind, group) {
  group.setAttribute("aria-busy", "true");
  try {
    const result = await request("POST", sessionPath("/feedback"), { item_ids: [itemId], kind });
    feedback = result.feedback;
    for (const node of ui.log.querySelectorAll(".card")) showFeedback(node);
  } catch (error) {
    showError(error);
  } finally {
    group.removeAttribute("aria-busy");
  }
}

async function reset() {
  setReady(false);
  try {
    render(await request("POST", sessionPath("/reset")));
    ui.announce.textContent = "A new conversation has started.";
  } catch (error) {
    showError(error);
  } finally {
    setReady(true);
    ui.message.focus();
  }
}

ui.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = ui.message.value;
  if (sending || !text.trim()) return;
  ui.message.value = "";
  send(text);
});
ui.reset.addEventListener("click", reset);
ui.newSession.addEventListener("click", async () => {
  await startSession();
  ui.message.focus();
});
restore();
