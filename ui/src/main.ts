/**
 * The window: a header with the connection badge, the Demo badge and the
 * source, and the last events, newest first. Data flows one way: ipc →
 * the state below → a render batched on a short timer. Server text is only
 * ever set with textContent.
 */
import "./style.css";

import { openFeed, type EventView, type LinkState } from "./ipc";
import { CAPACITY, badge, clockTime, mergeEvents, severityClass } from "./model";

/** Renders at most this often while events stream in. */
const RENDER_EVERY_MS = 100;

function byId<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  return el as T;
}

const ui = {
  conn: byId<HTMLSpanElement>("conn"),
  demo: byId<HTMLSpanElement>("demo"),
  source: byId<HTMLSpanElement>("source"),
  detail: byId<HTMLParagraphElement>("detail"),
  empty: byId<HTMLParagraphElement>("empty"),
  list: byId<HTMLOListElement>("events"),
};

let state: LinkState = { state: "connecting" };
/** When `state` arrived, for the reconnect countdown. */
let stateAt = Date.now();
let events: EventView[] = [];
/** The row element of each listed event, by key. */
const rows = new Map<number, HTMLLIElement>();
let renderTimer: number | undefined;

function setState(next: LinkState) {
  state = next;
  stateAt = Date.now();
  scheduleRender();
}

function addEvents(incoming: readonly EventView[]) {
  events = mergeEvents(events, incoming, CAPACITY);
  scheduleRender();
}

function scheduleRender() {
  renderTimer ??= window.setTimeout(() => {
    renderTimer = undefined;
    renderBadge();
    renderEvents();
  }, RENDER_EVERY_MS);
}

function renderBadge() {
  const b = badge(state, Date.now() - stateAt);
  ui.conn.textContent = b.text;
  ui.conn.className = `badge tone-${b.tone}`;
  ui.detail.textContent = b.detail ?? "";
  ui.detail.hidden = b.detail === null;
}

function renderEvents() {
  const keep = new Set(events.map((e) => e.key));
  for (const [key, row] of rows) {
    if (!keep.has(key)) {
      row.remove();
      rows.delete(key);
    }
  }
  // Put rows in list order, creating new ones; existing rows are not rebuilt.
  let cursor: ChildNode | null = ui.list.firstChild;
  for (const e of events) {
    let row = rows.get(e.key);
    if (!row) {
      row = eventRow(e);
      rows.set(e.key, row);
    }
    if (row === cursor) {
      cursor = cursor.nextSibling;
    } else {
      ui.list.insertBefore(row, cursor);
    }
  }
  ui.empty.hidden = events.length > 0;
}

function eventRow(e: EventView): HTMLLIElement {
  const row = node("li", `event sev-${severityClass(e.severity)}`);
  row.append(node("span", "chip", e.severity));
  const time = node("time", "time", clockTime(e.time));
  time.dateTime = e.time;
  row.append(time);
  const text = node("div", "text");
  text.append(node("span", "title", e.title));
  if (e.body) text.append(node("span", "body", e.body));
  row.append(text);
  row.append(node("span", "subject", e.subject ?? ""));
  return row;
}

/** An element with a class and, optionally, text (as text, never markup). */
function node<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className: string,
  text?: string,
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

async function start() {
  // Keeps the reconnect countdown moving between state changes.
  window.setInterval(() => {
    if (state.state === "reconnecting") renderBadge();
  }, 1000);
  try {
    const { snapshot } = await openFeed({ state: setState, event: (e) => addEvents([e]) });
    ui.source.textContent = snapshot.source;
    ui.source.title = snapshot.source;
    ui.demo.hidden = !snapshot.demo;
    setState(snapshot.state);
    addEvents(snapshot.events);
  } catch (error) {
    setState({ state: "offline", error: error instanceof Error ? error.message : String(error) });
  }
}

void start();
