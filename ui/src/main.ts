/**
 * The window: a header (connection badge, Demo badge, real-time indicator,
 * source), a tab bar and one view per dashboard. Data flows one way: ipc →
 * the stores (`store.ts`) → a render batched on a timer that redraws only
 * the visible tab, and only when its store changed. Server text is only ever
 * set with textContent.
 */
import "./errors";
import "./locale";
import "./style.css";

import { LiveChart } from "./chart";
import { byId, cell, fixed, node, row, setClass, setText, syncList } from "./dom";
import {
  acknowledge,
  openFeed,
  searchInbox,
  type AlertView,
  type EventView,
  type InboxCounts,
  type InboxFilter,
  type LinkState,
  type LinkView,
  type Severity,
} from "./ipc";
import { CAPACITY, badge, clockTime, mergeEvents, severityClass } from "./model";
import { linkLabel, linksSummary } from "./settings";
import { SettingsView } from "./settings-view";
import {
  Desk,
  TABS,
  gaugeTone,
  isImportant,
  isTab,
  riskClass,
  toastKey,
  trend,
  type Tab,
} from "./store";

/** Renders at most this often while events stream in. */
const RENDER_EVERY_MS = 250;

const ui = {
  conn: byId<HTMLSpanElement>("conn"),
  demo: byId<HTMLSpanElement>("demo"),
  realtime: byId<HTMLSpanElement>("realtime"),
  paused: byId<HTMLSpanElement>("paused"),
  gap: byId<HTMLParagraphElement>("gap"),
  source: byId<HTMLSpanElement>("source"),
  detail: byId<HTMLParagraphElement>("detail"),
  unread: byId<HTMLSpanElement>("unread"),
  empty: byId<HTMLParagraphElement>("empty"),
  list: byId<HTMLOListElement>("events"),
  toasts: byId<HTMLDivElement>("toasts"),
};

let state: LinkState = { state: "connecting" };
/** When `state` arrived, for the reconnect countdown. */
let stateAt = Date.now();
let events: EventView[] = [];
const desk = new Desk();
let counts: InboxCounts = { total: 0, unread: 0, critical: 0, paused_until: null, gap: null };
/** Every running connection. */
let links: LinkView[] = [];
/** Whether `links` came from the backend (the snapshot or an event). */
let linksKnown = false;
/** When `links` arrived, for their reconnect countdowns. */
let linksAt = Date.now();
/** The snapshot's label and demo flag, for a backend that sends no links. */
let fallbackSource = "";
let fallbackDemo = false;
/** A `links` event came before the snapshot (which may then be older). */
let linksLive = false;
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
  return (
    state.state !== "connected" ||
    links.some((l) => l.state.state !== "connected") ||
    rate > 0 ||
    Date.now() - lastEventAt < 4000 ||
    active === "settings"
  );
}

function tick() {
  rate = eventsThisSecond;
  eventsThisSecond = 0;
  renderHeader();
  renderLinks();
  if (active === "settings") settings.tick();
  ticker = needsTick() ? window.setTimeout(tick, 1000) : undefined;
}

/** Starts the clock if it is stopped (anything that may need it calls this). */
function wakeClock() {
  ticker ??= window.setTimeout(tick, 1000);
}

// ---------- data in ----------

function setState(next: LinkState) {
  const was = state.state;
  state = next;
  stateAt = Date.now();
  if (was !== next.state && (next.state === "connected" || was === "connected")) {
    toast(next.state === "connected" ? "info" : "warning", badge(next).text, badge(next).detail ?? "", "link");
  }
  dirty.add("header");
  scheduleRender();
  wakeClock();
}

function onEvents(incoming: readonly EventView[], live: boolean) {
  for (const e of incoming) {
    const tab = desk.apply(e);
    if (tab) dirty.add(tab);
    if (live && isImportant(e)) toast(e.severity, e.title, e.body, toastKey(e));
  }
  if (live) {
    lastEventAt = Date.now();
    eventsThisSecond += incoming.length;
    wakeClock();
  }
  events = mergeEvents(events, incoming, CAPACITY);
  dirty.add("events");
  scheduleRender();
}

function setLinks(next: readonly LinkView[]) {
  links = [...next];
  linksKnown = true;
  linksAt = Date.now();
  settings.links(links);
  renderLinks();
  // The detail line names the connection behind the worst state.
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

// ---------- header, tabs, toasts ----------

function renderHeader() {
  const b = badge(state, Date.now() - stateAt);
  setText(ui.conn, b.text);
  setClass(ui.conn, `badge tone-${b.tone}`);
  // With several connections, say which one the worst state is.
  const who = links.length > 1 ? links.find((l) => l.state.state === state.state) : undefined;
  const detail = b.detail === null ? null : who ? `${who.profile}: ${b.detail}` : b.detail;
  setText(ui.detail, detail ?? "");
  ui.detail.hidden = detail === null;
  const live = Date.now() - lastEventAt < 3000;
  setText(ui.realtime, live ? `Real-time updates · ${rate}/s` : "Real-time updates · idle");
  setClass(ui.realtime, `realtime ${live ? "on" : "off"}`);
  ui.unread.hidden = counts.unread === 0;
  setText(ui.unread, counts.unread >= 999 ? "999+" : String(counts.unread));
  setClass(ui.unread, counts.critical > 0 ? "count critical" : "count");
  ui.paused.hidden = counts.paused_until === null;
  if (counts.paused_until) {
    setText(ui.paused, `Notifications paused until ${clockTime(counts.paused_until)} (emergencies still shown)`);
  }
  // A history gap stays in sight until its inbox entry is acknowledged.
  ui.gap.hidden = counts.gap === null;
  setText(ui.gap, counts.gap ?? "");
}

function selectTab(tab: Tab) {
  if (active === "settings" && tab !== "settings") settings.close();
  active = tab;
  wakeClock();
  for (const t of TABS) {
    byId(`tab-${t}`).hidden = t !== tab;
  }
  for (const b of document.querySelectorAll<HTMLButtonElement>(".tabs button")) {
    b.setAttribute("aria-selected", String(b.dataset["tab"] === tab));
  }
  if (tab === "inbox") void refreshInbox();
  else if (tab === "settings") settings.open();
  else renderTab(tab);
}

function renderTab(tab: Tab) {
  switch (tab) {
    case "trading":
      return renderTrading();
    case "hr":
      return renderHr();
    case "merchant":
      return renderMerchant();
    case "compliance":
      return renderCompliance();
    case "operations":
      return renderOperations();
    case "inbox":
      return void refreshInbox();
    case "events":
      return renderEvents();
    case "settings":
      return settings.tick();
  }
}

const MAX_TOASTS = 3;
const TOAST_MS = 6000;

/** The shown toasts by what they are about, each with its expiry timer. */
const toasts = new Map<string, { el: HTMLDivElement; count: number; timer: number }>();

/**
 * A toast in the strip under the tabs (never over a dashboard panel).
 * Toasts about one subject fold into one, counted ("×3"), newest text.
 */
function toast(severity: Severity, title: string, body: string, key: string = title) {
  const old = toasts.get(key);
  if (old) window.clearTimeout(old.timer);
  const el = old?.el ?? node("div", "toast");
  const count = (old?.count ?? 0) + 1;
  setClass(el, `toast sev-${severityClass(severity)}`);
  el.replaceChildren(node("strong", "", count > 1 ? `${title} ×${count}` : title));
  if (body) el.append(node("span", "", body));
  ui.toasts.prepend(el);
  const timer = window.setTimeout(() => {
    el.remove();
    toasts.delete(key);
  }, TOAST_MS);
  toasts.set(key, { el, count, timer });
  while (ui.toasts.childElementCount > MAX_TOASTS) {
    const last = ui.toasts.lastElementChild as HTMLDivElement | null;
    if (!last) break;
    last.remove();
    for (const [k, v] of toasts) {
      if (v.el === last) {
        window.clearTimeout(v.timer);
        toasts.delete(k);
      }
    }
  }
}

/** The #source text and the Demo badge from the running connections. */
function renderLinks() {
  const now = Date.now();
  if (!linksKnown) {
    setText(ui.source, fallbackSource);
    if (ui.source.title !== fallbackSource) ui.source.title = fallbackSource;
    ui.demo.hidden = !fallbackDemo;
    return;
  }
  const summary = linksSummary(links);
  setText(ui.source, links.length ? summary.text : "No connection");
  const title = links.map((l) => `${linkLabel(l)}: ${badge(l.state, now - linksAt).text}`).join("\n");
  if (ui.source.title !== title) ui.source.title = title;
  ui.demo.hidden = !summary.demo;
}

// ---------- trading ----------

const trading = {
  sessions: byId<HTMLTableSectionElement>("sessions"),
  ticker: byId<HTMLDivElement>("ticker"),
  estop: byId<HTMLDivElement>("estop"),
  decisions: byId<HTMLOListElement>("decisions"),
  alerts: byId<HTMLOListElement>("trading-alerts"),
  chart: new LiveChart(byId("pnl-chart"), 220, "P&L"),
  rows: new Map<string, HTMLTableRowElement>(),
  quotes: new Map<string, HTMLSpanElement>(),
  decisionRows: new Map<string, HTMLLIElement>(),
  alertRows: new Map<string, HTMLLIElement>(),
};

function renderTrading() {
  const t = desk.trading;
  const sessions = [...t.sessions.values()].sort((a, b) => a.id.localeCompare(b.id));
  syncList(
    trading.sessions,
    trading.rows,
    sessions,
    (s) => s.id,
    () => {
      const tr = row(5, [2, 3]);
      const gauge = node("div", "gauge");
      gauge.append(node("div", "fill"), node("span", "label"));
      cell(tr, 4).append(gauge);
      return tr;
    },
    (tr, s) => {
      setText(cell(tr, 0), s.id);
      setText(cell(tr, 1), s.status.replace(/_/g, " "));
      setClass(cell(tr, 1), s.status === "active" ? "ok" : "bad");
      setText(cell(tr, 2), fixed(s.pnl, 2));
      setClass(cell(tr, 2), `num ${s.pnl !== null && s.pnl < 0 ? "neg" : "pos"}`);
      setText(cell(tr, 3), s.trades === null ? "–" : String(s.trades));
      const gauge = cell(tr, 4).firstElementChild as HTMLDivElement;
      setClass(gauge, `gauge ${gaugeTone(s.utilization)}`);
      const fill = gauge.firstElementChild as HTMLDivElement;
      fill.style.width = `${Math.min(100, s.utilization ?? 0)}%`;
      setText(gauge.lastElementChild!, `${fixed(s.utilization, 0)} %`);
    },
  );
  const stopped = [...t.stopped];
  trading.estop.hidden = stopped.length === 0;
  setText(trading.estop, stopped.length ? `Emergency stop: ${stopped.join(", ")}` : "");
  syncList(
    trading.ticker,
    trading.quotes,
    [...t.quotes.values()].sort((a, b) => a.symbol.localeCompare(b.symbol)),
    (q) => q.symbol,
    () => node("span", "quote"),
    (el, q) => {
      setText(el, `${q.symbol} ${q.price.toFixed(2)} ${q.change >= 0 ? "▲" : "▼"}`);
      setClass(el, `quote ${q.change >= 0 ? "pos" : "neg"}`);
    },
  );
  trading.chart.update(t.pnl);
  syncList(
    trading.decisions,
    trading.decisionRows,
    t.decisions,
    (d) => String(d.key),
    (d) => {
      const li = node("li", "item");
      const head = node("div", "head");
      head.append(
        node("span", "time", clockTime(d.time)),
        node("strong", "", `${d.decision.toUpperCase()} ${d.symbol ?? ""}`),
        node("span", "muted", `${d.session} · ${d.algorithm}`),
        node("span", "conf", d.confidence === null ? "" : `${Math.round(d.confidence * 100)} %`),
      );
      li.append(head, node("div", "muted", d.reasoning));
      return li;
    },
    () => {},
  );
  syncList(
    trading.alerts,
    trading.alertRows,
    t.alerts,
    (a) => String(a.key),
    (a) => alertItem(a.time, a.severity, a.session, a.message),
    () => {},
  );
}

function alertItem(time: string, severity: Severity, about: string, message: string): HTMLLIElement {
  const li = node("li", `item sev-${severityClass(severity)}`);
  const head = node("div", "head");
  head.append(node("span", "chip", severity), node("span", "time", clockTime(time)), node("strong", "", about));
  li.append(head, node("div", "", message));
  return li;
}

// ---------- HR ----------

const hr = {
  departments: byId<HTMLDivElement>("departments"),
  stressed: byId<HTMLTableSectionElement>("stressed"),
  cards: new Map<string, HTMLDivElement>(),
  rows: new Map<string, HTMLTableRowElement>(),
};

function renderHr() {
  const depts = [...desk.hr.departments.values()].sort((a, b) => a.name.localeCompare(b.name));
  syncList(
    hr.departments,
    hr.cards,
    depts,
    (d) => d.id,
    () => {
      const c = node("div", "card");
      c.append(node("div", "name"), node("div", "big"), node("div", "muted"));
      return c;
    },
    (c, d) => {
      setClass(c, `card risk-${riskClass(d.risk)}`);
      setText(c.children[0]!, d.name);
      setText(c.children[1]!, d.risk);
      setText(c.children[2]!, `Engagement ${fixed(d.engagement)}`);
    },
  );
  syncList(
    hr.stressed,
    hr.rows,
    desk.hr.highStress(),
    (e) => e.id,
    () => row(5, [3]),
    (tr, e) => {
      setText(cell(tr, 0), e.name);
      setText(cell(tr, 1), e.department);
      setText(cell(tr, 2), e.position);
      setText(cell(tr, 3), fixed(e.stress));
      const t = trend(e.history);
      setText(cell(tr, 4), `${t === "up" ? "▲ rising" : t === "down" ? "▼ falling" : "● steady"}`);
      setClass(cell(tr, 4), t === "up" ? "neg" : t === "down" ? "pos" : "muted");
    },
  );
}

// ---------- merchant ----------

const merchant = {
  cards: byId<HTMLDivElement>("assessments"),
  alerts: byId<HTMLOListElement>("merchant-alerts"),
  chart: new LiveChart(byId("score-chart"), 220, "Score", [0, 100]),
  cardEls: new Map<string, HTMLDivElement>(),
  alertRows: new Map<string, HTMLLIElement>(),
};

function renderMerchant() {
  const m = desk.merchant;
  syncList(
    merchant.cards,
    merchant.cardEls,
    [...m.assessments.values()].sort((a, b) => a.id.localeCompare(b.id)),
    (a) => a.id,
    () => {
      const c = node("div", "card");
      c.append(node("div", "name"), node("div", "big"), node("div", "muted"), node("div", "muted"));
      return c;
    },
    (c, a) => {
      const tone = a.score === null ? "unknown" : a.score >= 80 ? "critical" : a.score >= 60 ? "high" : a.score >= 40 ? "medium" : "low";
      setClass(c, `card risk-${tone}`);
      setText(c.children[0]!, `${a.id} · ${a.merchant}`);
      const delta = a.score !== null && a.previous !== null ? a.score - a.previous : 0;
      setText(c.children[1]!, `${fixed(a.score)} ${delta > 0 ? "▲" : delta < 0 ? "▼" : ""}`);
      const p = a.prediction;
      setText(
        c.children[2]!,
        p ? `Prediction ${fixed(p.score)} in ${p.horizonDays ?? "?"} d (${p.confidence === null ? "?" : Math.round(p.confidence * 100)} %)` : "No prediction yet",
      );
      setText(c.children[3]!, `Alerts ${m.alerts.filter((x) => x.about === a.id).length}`);
    },
  );
  merchant.chart.update(m.scores);
  syncList(
    merchant.alerts,
    merchant.alertRows,
    m.alerts,
    (a) => String(a.key),
    (a) => alertItem(a.time, a.severity, a.about, a.message),
    () => {},
  );
}

// ---------- compliance ----------

const compliance = {
  clients: byId<HTMLTableSectionElement>("clients"),
  alerts: byId<HTMLOListElement>("compliance-alerts"),
  rows: new Map<string, HTMLTableRowElement>(),
  alertRows: new Map<string, HTMLLIElement>(),
};

function renderCompliance() {
  const c = desk.compliance;
  syncList(
    compliance.clients,
    compliance.rows,
    [...c.clients.values()].sort((a, b) => a.id.localeCompare(b.id)),
    (x) => x.id,
    () => row(6, [1, 3, 4, 5]),
    (tr, x) => {
      setText(cell(tr, 0), x.id);
      setText(cell(tr, 1), x.interactions === null ? "–" : String(x.interactions));
      setText(cell(tr, 2), x.lastApp ?? "–");
      setText(cell(tr, 3), fixed(x.engagement));
      setText(cell(tr, 4), x.agents === null ? "–" : String(x.agents));
      setText(cell(tr, 5), String(x.alerts));
    },
  );
  syncList(
    compliance.alerts,
    compliance.alertRows,
    c.alerts,
    (a) => String(a.key),
    (a) => alertItem(a.time, a.severity, a.about, a.message),
    () => {},
  );
}

// ---------- operations ----------

const ops = {
  metrics: byId<HTMLDivElement>("ops-metrics"),
  updated: byId<HTMLSpanElement>("ops-updated"),
  empty: byId<HTMLParagraphElement>("ops-empty"),
  chart: new LiveChart(byId("ops-chart"), 220, "value"),
  cards: new Map<string, HTMLDivElement>(),
};

/** A metric as a person reads it: numbers rounded, times on the clock. */
function metricText(v: number | string | boolean): string {
  if (typeof v === "number") return fixed(v, Number.isInteger(v) ? 0 : 1);
  if (typeof v === "string" && /^\d{4}-\d{2}-\d{2}T/.test(v) && !Number.isNaN(Date.parse(v))) return clockTime(v);
  return String(v);
}

function renderOperations() {
  const o = desk.operations;
  ops.empty.hidden = o.metrics.length > 0;
  setText(ops.updated, o.updated ? `· updated ${clockTime(o.updated)}` : "");
  syncList(
    ops.metrics,
    ops.cards,
    o.metrics,
    (m) => m.key,
    () => {
      const c = node("div", "card");
      c.append(node("div", "name"), node("div", "big"));
      return c;
    },
    (c, m) => {
      setText(c.children[0]!, m.label);
      setText(c.children[1]!, metricText(m.value));
    },
  );
  ops.chart.update(o.series);
}

// ---------- inbox ----------

const inbox = {
  list: byId<HTMLOListElement>("inbox"),
  summary: byId<HTMLParagraphElement>("inbox-summary"),
  severity: byId<HTMLSelectElement>("f-severity"),
  kind: byId<HTMLInputElement>("f-kind"),
  source: byId<HTMLInputElement>("f-source"),
  text: byId<HTMLInputElement>("f-text"),
  unread: byId<HTMLInputElement>("f-unread"),
  rows: new Map<string, HTMLLIElement>(),
  shown: [] as AlertView[],
  selected: new Set<number>(),
  busy: false,
  again: false,
};

function inboxFilter(): InboxFilter {
  const sev = inbox.severity.value;
  return {
    min_severity: sev === "warning" || sev === "critical" || sev === "emergency" ? sev : null,
    kind: inbox.kind.value || null,
    source: inbox.source.value || null,
    text: inbox.text.value || null,
    unread_only: inbox.unread.checked,
    limit: 200,
  };
}

/** Re-queries the inbox; at most one query in flight, the last one wins. */
async function refreshInbox() {
  if (inbox.busy) {
    inbox.again = true;
    return;
  }
  inbox.busy = true;
  try {
    inbox.shown = await searchInbox(inboxFilter());
    renderInbox();
  } catch (error) {
    setText(inbox.summary, error instanceof Error ? error.message : String(error));
  } finally {
    inbox.busy = false;
    if (inbox.again) {
      inbox.again = false;
      void refreshInbox();
    }
  }
}

function renderInbox() {
  setText(
    inbox.summary,
    `${inbox.shown.length} shown · ${counts.unread >= 999 ? "999+" : counts.unread} unread · ${counts.critical} critical unacknowledged · ${counts.total} stored`,
  );
  syncList(
    inbox.list,
    inbox.rows,
    inbox.shown,
    (a) => String(a.id),
    (a) => {
      const li = node("li", "event");
      const box = node("input", "pick");
      box.type = "checkbox";
      box.addEventListener("change", () => {
        if (box.checked) inbox.selected.add(a.id);
        else inbox.selected.delete(a.id);
      });
      const text = node("div", "text");
      text.append(node("span", "title", a.title));
      if (a.body) text.append(node("span", "body", a.body));
      const ack = node("button", "ack", "Acknowledge");
      ack.type = "button";
      ack.addEventListener("click", () => void ackIds([a.id]));
      li.append(box, node("span", "chip", a.severity), node("time", "time", clockTime(a.time)), text, ack);
      return li;
    },
    (li, a) => {
      setClass(li, `event inbox-row sev-${severityClass(a.severity)}${a.acknowledged ? " acked" : ""}`);
      (li.lastElementChild as HTMLButtonElement).hidden = a.acknowledged !== null;
    },
  );
}

async function ackIds(ids: number[]) {
  if (ids.length === 0) return;
  try {
    await acknowledge(ids);
    for (const id of ids) inbox.selected.delete(id);
    await refreshInbox();
  } catch (error) {
    toast("warning", "Cannot acknowledge", error instanceof Error ? error.message : String(error));
  }
}

function wireInbox() {
  let debounce: number | undefined;
  const changed = () => {
    window.clearTimeout(debounce);
    debounce = window.setTimeout(() => void refreshInbox(), 200);
  };
  for (const el of [inbox.severity, inbox.kind, inbox.source, inbox.text, inbox.unread]) {
    el.addEventListener("input", changed);
  }
  byId("inbox-filter").addEventListener("submit", (e) => e.preventDefault());
  byId("ack-selected").addEventListener("click", () => void ackIds([...inbox.selected]));
  byId("ack-shown").addEventListener("click", () =>
    void ackIds(inbox.shown.filter((a) => a.acknowledged === null).map((a) => a.id)),
  );
}

// ---------- events ----------

const eventRows = new Map<string, HTMLLIElement>();

function renderEvents() {
  syncList(
    ui.list,
    eventRows,
    events,
    (e) => String(e.key),
    (e) => {
      const li = node("li", `event sev-${severityClass(e.severity)}`);
      li.append(node("span", "chip", e.severity));
      const time = node("time", "time", clockTime(e.time));
      time.dateTime = e.time;
      li.append(time);
      const text = node("div", "text");
      text.append(node("span", "title", e.title));
      if (e.body) text.append(node("span", "body", e.body));
      li.append(text, node("span", "subject", e.subject ?? ""));
      return li;
    },
    () => {},
  );
  ui.empty.hidden = events.length > 0;
}

// ---------- settings ----------

const settings = new SettingsView();

// ---------- start ----------

async function start() {
  for (const b of document.querySelectorAll<HTMLButtonElement>(".tabs button")) {
    b.addEventListener("click", () => {
      const t = b.dataset["tab"];
      if (isTab(t)) selectTab(t);
    });
  }
  wireInbox();
  selectTab("trading");
  try {
    const { snapshot } = await openFeed({
      state: setState,
      event: (e) => onEvents([e], true),
      inbox: setCounts,
      links: (next) => {
        linksLive = true;
        setLinks(next);
      },
    });
    fallbackSource = snapshot.source;
    fallbackDemo = snapshot.demo;
    if (!linksLive && Array.isArray(snapshot.links)) setLinks(snapshot.links);
    else renderLinks();
    if (isTab(snapshot.tab)) selectTab(snapshot.tab);
    setState(snapshot.state);
    setCounts(snapshot.inbox);
    onEvents(snapshot.events, false);
  } catch (error) {
    setState({ state: "offline", error: error instanceof Error ? error.message : String(error) });
  }
}

void start();
