// What the panel's buttons share (the status line's Stop, the explain control): inline
// styles, so a part needs no stylesheet of its own (every call's widgets carry theirs),
// taking the notebook theme's colours, and a line read by screen readers, not shown.

const BUTTON =
  "font: inherit; font-size: 85%; padding: 0.1em 0.8em; " +
  "color: var(--jp-ui-font-color1, inherit); background: var(--jp-layout-color2, transparent); " +
  "border: 1px solid var(--jp-border-color1, currentColor); border-radius: 3px; cursor: pointer";
const HIDDEN =
  "position: absolute; width: 1px; height: 1px; overflow: hidden; clip-path: inset(50%); " +
  "white-space: nowrap";

function politeLine() {
  const line = document.createElement("span");
  line.setAttribute("style", HIDDEN);
  line.setAttribute("role", "status");
  line.setAttribute("aria-live", "polite");
  return line;
}
