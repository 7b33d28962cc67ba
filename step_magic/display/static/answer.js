// The answer: finished blocks appended, the unfinished tail replaced.

function renderAnswer(model, store, el) {
  const box = document.createElement("div");
  box.className = "step-magic-live-answer jp-RenderedHTMLCommon";
  const blocks = document.createElement("div");
  const tail = document.createElement("div");
  box.append(blocks, tail);
  el.append(box);
  blocks.innerHTML = store.blocks.join("");
  tail.innerHTML = store.tail;
  const view = {
    answer(m) {
      // one message carries the new blocks and the tail that no longer holds them, so a
      // finished paragraph never shows twice
      if (m.clear) blocks.replaceChildren();
      if (m.b !== undefined) blocks.insertAdjacentHTML("beforeend", m.b);
      if (m.clear || m.t !== undefined) tail.innerHTML = store.tail;
    },
  };
  store.views.add(view);
  return () => store.views.delete(view);
}

export default {
  initialize,
  render({ model, el }) {
    return renderAnswer(model, storeOf(model), el);
  },
};
