/**
 * The window: a header, a tab bar and one view per dashboard (`views/`).
 * Data flows one way: ipc → the stores (`connection.ts` for the links,
 * `store.ts` for the dashboards) → a render batched on a timer that redraws
 * only the visible tab, and only when its store changed. This file wires
 * them together and owns the clock and the tabs. Server text is only ever
 * set with textContent.
 */
import "./errors";
import "./locale";
import "./style.css";

import { Connections } from "./connection";
import { byId } from "./dom";
import {
  closeWindow,
  openFeed,
  rememberTab,
  type EventView,
  type InboxCounts,
  type LinkState,
  type LinkView,
} from "./ipc";
import { keyAction } from "./keys";
import { badge } from "./model";
import { SettingsView } from "./settings-view";
import { Desk, TABS, isImportant, isTab, toastKey, type Tab } from "./store";
import { ComplianceView } from "./views/compliance";
import { EventsView } from "./views/events";
import { HeaderView } from "./views/header";
import { HrView } from "./views/hr";
import { InboxView } from "./views/inbox";
import { MerchantView } from "./views/merchant";
import { OperationsView } from "./views/operations";
import { Toasts } from "./views/toasts";
import { TradingView } from "./views/trading";

/** Renders at most this often while events stream in. */
const RENDER_EVERY_MS = 250;
/** The real-time indicator (and so the clock) stays on this long after an event. */
const RECENT_MS = 4000;

const conn = new Connections(Date.now());
const desk = new Desk();
let counts: InboxCounts = { total: 0, unread: 0, critical: 0, paused_until: null, gap: null };

const header = new HeaderView();
const toasts = new Toasts(byId<HTMLDivElement>("toasts"));
const settings = new SettingsView();
const inbox = new InboxView(
  () => counts,
  (title, message) => toasts.show("warning", title, message),
);
const events = new EventsView();
const dashboards = {
  trading: new TradingView(desk),
  hr: new HrView(desk),
  merchant: new MerchantView(desk),
  compliance: new ComplianceView(desk),
  operations: new OperationsView(desk),
};

let active: Tab = "trading";
const dirty = new Set<Tab | "header">(["header"]);
/** Arrival times of the last events, for the real-time indicator. */
let lastEventAt = 0;
let eventsThisSecond = 0;
let rate = 0;
let renderTimer: number | undefined;

// ---------- the clock ----------

// Once a second while something on screen changes with time: a countdown
// or an elapsed time (any connection not live), the event rate and the
// real-time indicator (events in the last few seconds), Settings' live
// states. An idle app runs no timer at all: the webview then does no work
// between events.
let ticker: number | undefined;

function needsTick(): boolean {
  return conn.ticking() || rate > 0 || Date.now() - lastEventAt < RECENT_MS || active === "settings";
}

function tick() {
  rate = eventsThisSecond;
  eventsThisSecond = 0;
  renderHeader();
  header.renderSource(conn, Date.now());
  if (active === "settings") settings.tick();
  ticker = needsTick() ? window.setTimeout(tick, 1000) : undefined;
}

/** Starts the clock if it is stopped (anything that may need it calls this). */
function wakeClock() {
  ticker ??= window.setTimeout(tick, 1000);
}

// ---------- data in ----------

function setState(next: LinkState) {
  if (conn.setState(next, Date.now())) {
    const b = badge(next);
    toasts.show(next.state === "connected" ? "info" : "warning", b.text, b.detail ?? "", "link");
  }
  dirty.add("header");
  scheduleRender();
  wakeClock();
}

function onEvents(incoming: readonly EventView[], live: boolean) {
  for (const e of incoming) {
    const tab = desk.apply(e);
    if (tab) dirty.add(tab);
    if (live && isImportant(e)) toasts.show(e.severity, e.title, e.body, toastKey(e));
  }
  if (live) {
    lastEventAt = Date.now();
    eventsThisSecond += incoming.length;
    wakeClock();
  }
  events.add(incoming);
  dirty.add("events");
  scheduleRender();
}

/** The list of connections changed: the source line, Settings, and the
 * header's detail line (it names the connection behind the worst state). */
function linksChanged() {
  settings.links([...conn.list()]);
  header.renderSource(conn, Date.now());
  dirty.add("header");
  scheduleRender();
  wakeClock();
}

function setCounts(next: InboxCounts) {
  counts = next;
  dirty.add("header");
  dirty.add("inbox");
  scheduleRender();
}

function scheduleRender() {
  renderTimer ??= window.setTimeout(() => {
    renderTimer = undefined;
    if (dirty.delete("header")) renderHeader();
    if (dirty.delete(active)) renderTab(active);
  }, RENDER_EVERY_MS);
}

// ---------- tabs ----------

function renderHeader() {
  header.render(conn, counts, rate, lastEventAt, Date.now());
}

/** The snapshot has been applied: tab changes from here on are the user's. */
let started = false;

function selectTab(tab: Tab) {
  if (active === "settings" && tab !== "settings") settings.close();
  active = tab;
  wakeClock();
  for (const t of TABS) {
    byId(`tab-${t}`).hidden = t !== tab;
  }
  for (const b of document.querySelectorAll<HTMLButtonElement>(".tabs button")) {
    const selected = b.dataset["tab"] === tab;
    b.setAttribute("aria-selected", String(selected));
    // One tab stop for the bar; arrows move within it (keys.ts).
    b.tabIndex = selected ? 0 : -1;
  }
  // The default shown before the snapshot arrives is not the user's choice:
  // remembering it would overwrite the tab a reopened window is to open on.
  if (started) rememberTab(tab);
  if (tab === "inbox") void inbox.refresh();
  else if (tab === "settings") settings.open();
  else renderTab(tab);
}

function renderTab(tab: Tab) {
  switch (tab) {
    case "inbox":
      return void inbox.refresh();
    case "events":
      return events.render();
    case "settings":
      return settings.tick();
    default:
      return dashboards[tab].render();
  }
}

/** A notification was opened: the inbox, on its alert (null: the inbox
 * alone). From the `open-alert` event, or from the snapshot of a window
 * the Open built. */
function openAlert(id: number | null) {
  selectTab("inbox");
  if (id !== null) void inbox.show(id);
}

// ---------- start ----------

function onKey(e: KeyboardEvent) {
  const target = e.target instanceof HTMLElement ? e.target : null;
  const action = keyAction(e, {
    tabs: TABS,
    active,
    onTabBar: target?.getAttribute("role") === "tab",
    typing: target !== null && (target.matches("input, textarea, select") || target.isContentEditable),
  });
  if (!action) return;
  e.preventDefault();
  switch (action.kind) {
    case "tab":
      selectTab(action.tab);
      if (target?.getAttribute("role") === "tab") byId(`tabbtn-${action.tab}`).focus();
      return;
    case "search":
      selectTab("inbox");
      return inbox.focusSearch();
    case "acknowledge":
      return inbox.acknowledgeCurrent();
    case "unacknowledge":
      return inbox.unacknowledgeCurrent();
    case "close":
      return inbox.close();
    case "closeWindow":
      return void closeWindow().catch(() => undefined);
  }
}

async function start() {
  document.addEventListener("keydown", onKey);
  for (const b of document.querySelectorAll<HTMLButtonElement>(".tabs button")) {
    b.addEventListener("click", () => {
      const t = b.dataset["tab"];
      if (isTab(t)) selectTab(t);
    });
  }
  selectTab("trading");
  try {
    const { snapshot } = await openFeed({
      state: setState,
      event: (e) => onEvents([e], true),
      inbox: setCounts,
      links: (next: LinkView[]) => {
        conn.onLinks(next, Date.now());
        linksChanged();
      },
      openAlert,
      selectTab: (tab) => {
        if (isTab(tab)) selectTab(tab);
      },
    });
    if (conn.onSnapshot(snapshot, Date.now())) linksChanged();
    else header.renderSource(conn, Date.now());
    if (isTab(snapshot.tab)) selectTab(snapshot.tab);
    if (snapshot.open_alert !== null) openAlert(snapshot.open_alert);
    started = true;
    setState(snapshot.state);
    setCounts(snapshot.inbox);
    onEvents(snapshot.events, false);
  } catch (error) {
    setState({ state: "offline", error: error instanceof Error ? error.message : String(error) });
  }
}

void start();
