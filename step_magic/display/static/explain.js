// "Explain with step-magic" under a failed cell's traceback. It sends nothing by itself:
// a click (or Enter / Space, it is a native button) asks the kernel, which answers when it
// is idle, and the explanation streams into this place, replacing the button.

const BUTTON =
  "font: inherit; font-size: 85%; margin: 0.3em 0; padding: 0.15em 0.9em; " +
  "color: var(--jp-ui-font-color1, inherit); background: var(--jp-layout-color2, transparent); " +
  "border: 1px solid var(--jp-border-color1, currentColor); border-radius: 3px; cursor: pointer";
const HIDDEN =
  "position: absolute; width: 1px; height: 1px; overflow: hidden; clip-path: inset(50%); " +
  "white-space: nowrap";

export default {
  render({ model, el }) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "step-magic-explain";
    button.setAttribute("style", BUTTON);
    button.textContent = "Explain with step-magic";
    button.title =
      "Send this error, the failing code and the names on the failing line to the model " +
      "(%step --fix also proposes a corrected cell)";
    const announce = document.createElement("span");
    announce.setAttribute("style", HIDDEN);
    announce.setAttribute("role", "status");
    announce.setAttribute("aria-live", "polite");
    button.addEventListener("click", () => {
      if (button.getAttribute("aria-disabled") === "true") return;
      // say it at once: the kernel hears of it only when no cell is running
      button.textContent = "Asking…";
      button.setAttribute("aria-disabled", "true");
      announce.textContent = "Asking step-magic about this error…";
      model.send({ explain: true });
    });
    el.append(button, announce);
  },
};
