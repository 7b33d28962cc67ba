// The status line: what the call is doing, a Stop button for a background call, and a
// polite announcement of each new phase for screen readers (not of every count).

// BUTTON and politeLine come from controls.js, loaded before this script.

function renderStatus(model, el) {
  const line = document.createElement("div");
  line.className = "step-magic-status";
  const stop = document.createElement("button");
  stop.type = "button";
  stop.className = "step-magic-stop";
  stop.setAttribute("style", BUTTON + "; margin-right: 0.6em");
  stop.textContent = "Stop";
  stop.title =
    "Stop this background call. The kernel's interrupt does not reach it; a click lands when " +
    "no cell is running (%step_cancel works from any cell).";
  stop.addEventListener("click", () => {
    // say it at once: the kernel may hear of it only after the running cell
    stop.textContent = "Stopping…";
    stop.disabled = true;
    model.send({ stop: true });
  });
  const text = document.createElement("span");
  text.setAttribute("style", "font-size: 85%");
  const announce = politeLine();
  announce.className = "step-magic-announce";
  line.append(stop, text, announce);
  el.append(line);
  const draw = () => {
    stop.hidden = !model.get("stoppable");
    text.textContent = model.get("status");
    announce.textContent = model.get("phase");
  };
  draw();
  // one name per call: marimo's model takes no space-separated list of events
  const events = ["change:status", "change:phase", "change:stoppable"];
  for (const event of events) model.on(event, draw);
  return () => events.forEach((event) => model.off(event, draw));
}

export default {
  render({ model, el }) {
    return renderStatus(model, el);
  },
};
