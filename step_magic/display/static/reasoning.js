// The reasoning: a native <details> shaped like the saved form (display/static.py).

const CHUNK = 8000; // reasoning is laid out in blocks of about this many characters

// Where a chunk of reasoning ends, in UTF-16 units (JavaScript's string length): after the
// first newline at or past CHUNK - 1, else at 2 * CHUNK but never between the two halves of
// one character (display/static.py cuts the saved form at the same places).
function chunkEnd(chunk, text) {
  const from = Math.max(CHUNK - 1 - chunk.length, 0);
  const newline = text.indexOf("\n", from);
  const limit = 2 * CHUNK - chunk.length;
  if (newline !== -1 && newline < limit) return newline + 1;
  if (text.length < limit) return -1;
  const unit = text.charCodeAt(limit - 1);
  return unit >= 0xd800 && unit <= 0xdbff ? limit - 1 : limit;
}

function estimate(text) {
  // the height of a chunk not drawn yet (content-visibility), as display/static.py guesses it
  const lines = text.split("\n").length + Math.floor(text.length / 100);
  return `auto ${Math.floor((lines * 3) / 2)}em`;
}

function renderReasoning(model, store, el) {
  const details = document.createElement("details");
  details.className = "step-magic-reasoning step-magic-live";
  details.open = model.get("expanded");
  const summary = document.createElement("summary");
  const body = document.createElement("div");
  body.setAttribute("style", model.get("body_style"));
  details.append(summary, body);
  el.append(details);
  let chunk = null;
  let chunkText = "";
  const write = (text) => {
    while (text) {
      if (!chunk) {
        chunk = document.createElement("div");
        chunk.className = "step-magic-chunk";
        chunk.style.contentVisibility = "auto";
        chunkText = "";
        body.append(chunk);
      }
      const end = chunkEnd(chunkText, text);
      const piece = end === -1 ? text : text.slice(0, end);
      chunk.append(piece);
      chunkText += piece;
      text = end === -1 ? "" : text.slice(end);
      if (end !== -1) {
        chunk.style.containIntrinsicSize = estimate(chunkText);
        chunk = null;
      }
    }
  };
  const atEnd = () => body.scrollHeight - body.scrollTop - body.clientHeight < 8;
  const showGap = () => {
    if (!(store.gap || store.saved) || body.querySelector(".step-magic-gap")) return;
    const note = document.createElement("div");
    note.className = "step-magic-gap";
    note.textContent = store.saved
      ? "Saved while the reply streamed: the text received until then.\n"
      : "… some text arrived before this panel was ready; the final form has all of it\n";
    body.prepend(note);
  };
  const title = () => {
    summary.textContent = model.get("status");
  };
  title();
  write(store.reasoning);
  showGap();
  let following = true; // follow the newest text until the reader scrolls up
  const scrolled = () => {
    following = atEnd();
  };
  body.addEventListener("scroll", scrolled, { passive: true });
  const toggled = () => {
    if (details.open) body.scrollTop = body.scrollHeight, (following = true);
    if (model.get("expanded") !== details.open) {
      // a message, not save_changes: that would also send the page-only snapshot
      model.set("expanded", details.open);
      model.send({ expanded: details.open });
    }
  };
  details.addEventListener("toggle", toggled);
  const view = {
    reasoning(text) {
      // at the end before this text came (a reader who just scrolled back down, while
      // earlier text was still being appended): stay there
      const stick = following || atEnd();
      write(text);
      showGap();
      if (stick && details.open) (body.scrollTop = body.scrollHeight), (following = true);
    },
  };
  store.views.add(view);
  const opened = () => {
    if (details.open !== model.get("expanded")) details.open = model.get("expanded");
  };
  model.on("change:status", title);
  model.on("change:expanded", opened);
  return () => {
    carryOver(model.get("key"), details, body, following);
    store.views.delete(view);
    model.off("change:status", title);
    model.off("change:expanded", opened);
  };
}

// When the saved form replaces this view, it opens (or not) and scrolls as the reader left
// the live one: the kernel hears of a click only after the cell ends, and the page must not
// jump meanwhile. The saved <details> carries the same key; the kernel re-renders it once the
// click reaches it, so every box with that key is fitted, once, for the next ten seconds.
function carryOver(key, details, body, following) {
  const open = details.open;
  const top = body.scrollTop;
  const fitted = new WeakSet();
  const fit = () => {
    const boxes = document.querySelectorAll(`details:not(.step-magic-live) > div[data-step-call="${key}"]`);
    for (const box of boxes) {
      if (fitted.has(box)) continue;
      fitted.add(box);
      box.parentElement.open = open;
      box.scrollTop = following ? box.scrollHeight : top;
    }
  };
  fit();
  const watch = new MutationObserver(fit);
  watch.observe(document.body, { childList: true, subtree: true });
  setTimeout(() => watch.disconnect(), 10000);
}

export default {
  initialize,
  render({ model, el }) {
    return renderReasoning(model, storeOf(model), el);
  },
};
