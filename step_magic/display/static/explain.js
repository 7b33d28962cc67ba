// "Explain with step-magic" under a failed cell's traceback. It sends nothing by itself:
// a click (or Enter / Space, it is a native button) asks the kernel, which answers when it
// is idle, and the explanation streams into this place, replacing the button.

// BUTTON and politeLine come from controls.js, loaded before this script.

export default {
  render({ model, el }) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "step-magic-explain";
    button.setAttribute("style", BUTTON + "; margin: 0.3em 0");
    button.textContent = "Explain with step-magic";
    button.title =
      "Send this error, the failing code and the names on the failing line to the model " +
      "(%step --fix also proposes a corrected cell)";
    const announce = politeLine();
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
