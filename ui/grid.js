// The task grid: one cell per task, coloured by state, drawn on a canvas so 10,000 tasks stay cheap. A refresh
// repaints only the cells whose state changed. Mouse: hover shows the task, click opens it. Keyboard: arrows,
// Home/End and Page Up/Down move a cursor, Enter opens the task under it.
import { colours, h, LETTERS } from "./dom.js";

const TARGET_HEIGHT = 480; // CSS pixels the grid aims to fill, so a large job stays on one screen
const GAP = 1;

export class TaskGrid {
  constructor({ onOpen, onHover, describe }) {
    this.onOpen = onOpen;
    this.onHover = onHover;
    this.describe = describe; // index -> "task id", once the ids are known
    this.states = "";
    this.cursor = -1;
    this.canvas = h("canvas", { class: "grid", tabindex: 0, role: "img", "aria-label": "task grid" });
    this.tip = h("div", { class: "tip", hidden: true });
    this.element = h("div", { class: "grid-wrap" }, this.canvas, this.tip);
    this.canvas.addEventListener("mousemove", (event) => this.hover(event));
    this.canvas.addEventListener("mouseleave", () => (this.tip.hidden = true));
    this.canvas.addEventListener("click", (event) => {
      const index = this.indexAt(event);
      if (index >= 0) this.onOpen(index);
    });
    this.canvas.addEventListener("keydown", (event) => this.key(event));
  }

  layout(count) {
    const width = Math.max(200, Math.min(this.element.clientWidth || 1000, 1200));
    const cell = Math.max(4, Math.min(24, Math.floor(Math.sqrt((width * TARGET_HEIGHT) / Math.max(count, 1)))));
    const cols = Math.max(1, Math.min(count, Math.floor(width / cell))); // a small job: one short row
    return { cell, cols, rows: Math.ceil(count / cols), count };
  }

  // Draws `states` (one letter per task); returns how many cells it painted.
  update(states) {
    const layout = this.layout(states.length);
    const same = this.geometry && this.geometry.count === layout.count && this.geometry.cols === layout.cols;
    const dpr = window.devicePixelRatio || 1;
    const ctx = this.canvas.getContext("2d");
    if (!same) {
      this.geometry = layout;
      this.canvas.width = Math.round(layout.cols * layout.cell * dpr);
      this.canvas.height = Math.round(Math.max(1, layout.rows) * layout.cell * dpr);
      this.canvas.style.width = `${layout.cols * layout.cell}px`;
      this.canvas.style.height = `${Math.max(1, layout.rows) * layout.cell}px`;
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      this.previous = "";
      // The geometry, for anything that maps a cell to a position (the browser tests read pixels with it).
      this.canvas.dataset.cell = String(layout.cell);
      this.canvas.dataset.cols = String(layout.cols);
    }
    this.palette = this.palette || colours();
    const previous = this.previous || "";
    // Group the changed cells by state so each colour is set once.
    const byLetter = {};
    for (let i = 0; i < states.length; i++) {
      const letter = states[i];
      if (letter !== previous[i]) (byLetter[letter] ||= []).push(i);
    }
    const { cell, cols } = this.geometry;
    let painted = 0;
    for (const [letter, cells] of Object.entries(byLetter)) {
      ctx.fillStyle = this.palette[LETTERS[letter]] || "#000";
      for (const i of cells) {
        ctx.clearRect((i % cols) * cell, Math.floor(i / cols) * cell, cell, cell);
        ctx.fillRect((i % cols) * cell, Math.floor(i / cols) * cell, cell - GAP, cell - GAP);
      }
      painted += cells.length;
    }
    this.previous = states;
    this.states = states;
    if (this.cursor >= 0) this.drawCursor(this.cursor);
    this.canvas.setAttribute("aria-label", `task grid of ${states.length} tasks; arrow keys move, Enter opens a task`);
    return painted;
  }

  indexAt(event) {
    if (!this.geometry) return -1;
    const rect = this.canvas.getBoundingClientRect();
    const { cell, cols } = this.geometry;
    const col = Math.floor((event.clientX - rect.left) / cell);
    const row = Math.floor((event.clientY - rect.top) / cell);
    const index = row * cols + col;
    return col >= 0 && col < cols && row >= 0 && index < this.states.length ? index : -1;
  }

  label(index) {
    return `${this.describe(index)}: ${LETTERS[this.states[index]]}`;
  }

  hover(event) {
    const index = this.indexAt(event);
    if (index < 0) {
      this.tip.hidden = true;
      return;
    }
    const rect = this.canvas.getBoundingClientRect();
    this.tip.textContent = this.label(index);
    this.tip.style.left = `${event.clientX - rect.left + 12}px`;
    this.tip.style.top = `${event.clientY - rect.top + 12}px`;
    this.tip.hidden = false;
    this.onHover(index, (more) => {
      if (!this.tip.hidden && this.tip.dataset.index === String(index)) this.tip.textContent = `${this.label(index)}${more}`;
    });
    this.tip.dataset.index = String(index);
  }

  drawCursor(index) {
    const { cell, cols } = this.geometry;
    const ctx = this.canvas.getContext("2d");
    ctx.strokeStyle = getComputedStyle(document.documentElement).getPropertyValue("--focus").trim();
    ctx.lineWidth = 2;
    ctx.strokeRect((index % cols) * cell + 1, Math.floor(index / cols) * cell + 1, cell - 2, cell - 2);
  }

  move(index) {
    if (!this.states.length) return;
    const next = Math.max(0, Math.min(this.states.length - 1, index));
    if (this.cursor >= 0) {
      // Repaint the old cursor's cell with its state.
      const old = this.cursor;
      const { cell, cols } = this.geometry;
      const ctx = this.canvas.getContext("2d");
      ctx.clearRect((old % cols) * cell, Math.floor(old / cols) * cell, cell, cell);
      ctx.fillStyle = this.palette[LETTERS[this.states[old]]];
      ctx.fillRect((old % cols) * cell, Math.floor(old / cols) * cell, cell - GAP, cell - GAP);
    }
    this.cursor = next;
    this.drawCursor(next);
    this.onHover(next, () => {});
    document.getElementById("announce").textContent = this.label(next);
  }

  key(event) {
    const cols = this.geometry ? this.geometry.cols : 1;
    const at = this.cursor < 0 ? 0 : this.cursor;
    const moves = {
      ArrowRight: at + 1, ArrowLeft: at - 1, ArrowDown: at + cols, ArrowUp: at - cols,
      Home: 0, End: this.states.length - 1, PageDown: at + cols * 10, PageUp: at - cols * 10,
    };
    if (event.key in moves) {
      event.preventDefault();
      this.move(this.cursor < 0 ? 0 : moves[event.key]);
    } else if ((event.key === "Enter" || event.key === " ") && this.cursor >= 0) {
      event.preventDefault();
      this.onOpen(this.cursor);
    }
  }
}
