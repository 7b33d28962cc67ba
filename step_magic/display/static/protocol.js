// step-magic's live panel, the part every piece of it shares (see display/panel.py).
// The kernel sends numbered messages: {n, r} reasoning text, {n, b, t} finished answer blocks
// and the answer's unfinished tail (HTML the kernel already made safe), {n, clear} when the
// answer so far turns out to be reasoning. They are kept per model, so every view of it (and
// a view made later) draws the same text; the `head` trait recovers messages sent before this
// script had loaded. No dependency, no fetch: it must run in a classroom without network.
//
// What arrived is also mirrored, once a second, into the model's `snapshot` in this page
// only (never sent to the kernel: nothing here calls save_changes). A notebook saved while
// the reply streams, with "Save Widget State Automatically" on, keeps it, and the panel
// shows that text when the file is opened again without the kernel.

const STORES = new Map();

function storeOf(model) {
  const key = model.get("key");
  let store = STORES.get(key);
  if (!store) {
    store = { next: 0, waiting: new Map(), closed: false, gap: 0, reasoning: "", blocks: [], tail: "", views: new Set(), saved: false, finished: false };
    STORES.set(key, store);
  }
  return store;
}

// Messages are accepted in any order and applied in theirs: one that comes early waits for
// those before it. Once `head` is closed, a message still missing was sent before this script
// loaded and is kept nowhere: say so, and go on from the first one there is.
function accept(store, message) {
  if (message.n >= store.next) store.waiting.set(message.n, message);
}

function drain(store) {
  if (store.closed && store.waiting.size && !store.waiting.has(store.next)) {
    store.gap += 1;
    store.next = Math.min(...store.waiting.keys());
  }
  while (store.waiting.has(store.next)) {
    const m = store.waiting.get(store.next);
    store.waiting.delete(store.next);
    store.next += 1;
    apply(store, m);
  }
}

function receive(store, message) {
  accept(store, message);
  drain(store);
}

function apply(store, m) {
  if (m.r !== undefined) {
    store.reasoning += m.r;
    for (const view of store.views) view.reasoning?.(m.r);
  }
  if (m.clear) {
    store.blocks = [];
    store.tail = "";
  }
  if (m.b !== undefined) store.blocks.push(m.b);
  if (m.t !== undefined) store.tail = m.t;
  if (m.clear || m.b !== undefined || m.t !== undefined) {
    for (const view of store.views) view.answer?.(m);
  }
}

function adoptHead(model, store) {
  // every kept message first, then the gap check: a closed head fills the gaps it covers
  const head = model.get("head") || {};
  for (const m of head.messages || []) accept(store, m);
  store.closed = Boolean(head.closed);
  drain(store);
}

function snapshotEverySecond(model, store) {
  let due = null;
  return () => {
    if (due !== null) return;
    due = setTimeout(() => {
      due = null;
      if (store.finished) return; // the static form holds the text: no second copy
      const { reasoning, blocks, tail } = store;
      model.set("snapshot", { reasoning, blocks: blocks.join(""), tail });
    }, 1000);
  };
}

// A panel restored from a saved notebook: the text it had when the notebook was saved.
function restore(model, store) {
  const saved = model.get("snapshot");
  if (!saved || store.next > 0) return;
  store.reasoning = saved.reasoning || "";
  store.blocks = saved.blocks ? [saved.blocks] : [];
  store.tail = saved.tail || "";
  store.saved = true;
  store.next = Infinity; // the snapshot holds everything; the saved head must not add to it
}

function initialize({ model }) {
  const store = storeOf(model);
  const snapshot = snapshotEverySecond(model, store);
  const custom = (message) => {
    receive(store, message);
    snapshot();
  };
  const head = () => {
    const finished = Object.keys(model.get("head") || {}).length === 0 && store.next > 0;
    if (finished) {
      store.finished = true; // the static form holds the text now
      model.set("snapshot", null);
    }
    else adoptHead(model, store);
  };
  restore(model, store);
  model.on("msg:custom", custom);
  model.on("change:head", head);
  head();
  return () => STORES.delete(model.get("key"));
}
