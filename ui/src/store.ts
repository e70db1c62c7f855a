/**
 * The dashboards' stores: pure state built from live events, no DOM, no
 * Tauri. `Desk.apply` folds one `EventView` into the store it belongs to and
 * says which dashboard changed, so the render loop redraws only that one,
 * and only on a real change. Payload fields are read defensively: anything
 * missing or of the wrong type is ignored, never trusted.
 */
import type { EventView, Severity } from "./ipc";

export type Tab = "trading" | "hr" | "merchant" | "compliance" | "operations" | "inbox" | "events" | "settings";
export const TABS: readonly Tab[] = ["trading", "hr", "merchant", "compliance", "operations", "inbox", "events", "settings"];

export function isTab(s: unknown): s is Tab {
  return typeof s === "string" && (TABS as readonly string[]).includes(s);
}

type Obj = Record<string, unknown>;

function obj(v: unknown): Obj | null {
  return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Obj) : null;
}
function num(o: Obj | null, k: string): number | null {
  const v = o?.[k];
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}
function str(o: Obj | null, k: string): string | null {
  const v = o?.[k];
  return typeof v === "string" ? v : typeof v === "number" ? String(v) : null;
}
function seconds(iso: string): number {
  const t = Date.parse(iso);
  return Number.isNaN(t) ? Date.now() / 1000 : t / 1000;
}

/**
 * Columnar series for uPlot: one x column (seconds) and one y column per
 * named series, aligned by x; at most `cap` rows.
 */
export class SeriesTable {
  readonly xs: number[] = [];
  readonly names: string[] = [];
  readonly ys: (number | null)[][] = [];

  constructor(readonly cap: number) {}

  /** Sets `name`'s value at time `x`; a new row when x is newer than the last. */
  add(x: number, name: string, y: number): void {
    let col = this.names.indexOf(name);
    if (col < 0) {
      col = this.names.length;
      this.names.push(name);
      this.ys.push(this.xs.map(() => null));
    }
    let row = this.xs.length - 1;
    if (row < 0 || x > this.xs[row]!) {
      this.xs.push(x);
      for (const c of this.ys) c.push(null);
      row += 1;
      if (this.xs.length > this.cap) {
        this.xs.shift();
        for (const c of this.ys) c.shift();
        row -= 1;
      }
    } else if (x < this.xs[row]!) {
      // Late point: put it in the row with its time, if still kept.
      const at = this.xs.lastIndexOf(x);
      if (at < 0) return;
      row = at;
    }
    this.ys[col]![row] = y;
  }

  /** uPlot's `AlignedData`. */
  data(): [number[], ...(number | null)[][]] {
    return [this.xs, ...this.ys];
  }
}

// ---------- trading ----------

export interface Session {
  id: string;
  status: string;
  pnl: number | null;
  trades: number | null;
  /** Loss-limit utilisation, 0–100. */
  utilization: number | null;
  performance: number | null;
}

export interface Decision {
  key: number;
  time: string;
  session: string;
  algorithm: string;
  decision: string;
  reasoning: string;
  /** 0–1. */
  confidence: number | null;
  symbol: string | null;
}

export interface Quote {
  symbol: string;
  price: number;
  /** Price change against the previous tick. */
  change: number;
}

export interface TradingAlert {
  key: number;
  time: string;
  severity: Severity;
  session: string;
  message: string;
}

/** Utilisation at which the gauge turns to a warning. */
export const GAUGE_WARN = 80;

export function gaugeTone(utilization: number | null): "ok" | "warn" | "stop" {
  if (utilization === null) return "ok";
  if (utilization >= 100) return "stop";
  return utilization >= GAUGE_WARN ? "warn" : "ok";
}

export class TradingStore {
  readonly sessions = new Map<string, Session>();
  readonly pnl = new SeriesTable(240);
  decisions: Decision[] = [];
  alerts: TradingAlert[] = [];
  readonly quotes = new Map<string, Quote>();
  /** Sessions currently emergency-stopped. */
  readonly stopped = new Set<string>();

  static readonly FEED = 30;

  apply(e: EventView): boolean {
    const d = obj(e.data);
    switch (e.kind) {
      case "session_status": {
        const id = str(d, "sessionId");
        if (!id) return false;
        // The metrics: at the top of `data` (its fields merged, as the
        // backend sends them and as the hub relays them), or nested.
        const inner = obj(d?.["data"]);
        const metric = (k: string) => num(d, k) ?? num(inner, k);
        const s: Session = {
          id,
          status: str(d, "status") ?? "unknown",
          pnl: metric("currentPnL"),
          trades: metric("totalTrades"),
          utilization: metric("lossLimitUtilization"),
          performance: metric("performanceScore"),
        };
        this.sessions.set(id, s);
        if (s.status === "emergency_stopped") this.stopped.add(id);
        else this.stopped.delete(id);
        if (s.pnl !== null) this.pnl.add(seconds(e.time), id, s.pnl);
        return true;
      }
      case "algorithm_decision": {
        const market = obj(d?.["marketData"]);
        const dec: Decision = {
          key: e.key,
          time: e.time,
          session: str(d, "sessionId") ?? "",
          algorithm: str(d, "algorithmId") ?? "",
          decision: str(d, "decision") ?? "",
          reasoning: str(d, "reasoning") ?? "",
          confidence: num(d, "confidence"),
          symbol: str(market, "symbol"),
        };
        this.decisions = [dec, ...this.decisions].slice(0, TradingStore.FEED);
        return true;
      }
      case "market_data": {
        const symbol = str(d, "symbol");
        const price = num(d, "price");
        if (!symbol || price === null) return false;
        const prev = this.quotes.get(symbol);
        this.quotes.set(symbol, { symbol, price, change: prev ? price - prev.price : 0 });
        return true;
      }
      case "risk_alert": {
        const a: TradingAlert = {
          key: e.key,
          time: e.time,
          severity: e.severity,
          session: str(d, "sessionId") ?? "",
          message: str(d, "message") ?? e.body,
        };
        this.alerts = [a, ...this.alerts].slice(0, TradingStore.FEED);
        return true;
      }
      default:
        return false;
    }
  }
}

// ---------- HR ----------

export interface Department {
  id: string;
  name: string;
  risk: string;
  engagement: number | null;
}

export interface Employee {
  id: string;
  name: string;
  department: string;
  position: string;
  stress: number;
  /** The last stress values, oldest first. */
  history: number[];
}

/** Employees above this stress rate are listed. */
export const HIGH_STRESS = 40;

/** CSS-safe risk class for an `overall_risk` string. */
export function riskClass(risk: string): "low" | "medium" | "high" | "critical" | "unknown" {
  const r = risk.toLowerCase();
  return r === "low" || r === "medium" || r === "high" || r === "critical" ? r : "unknown";
}

/** The trend of a short history: last value against the first. */
export function trend(history: readonly number[]): "up" | "down" | "flat" {
  if (history.length < 2) return "flat";
  const delta = history[history.length - 1]! - history[0]!;
  if (delta > 1) return "up";
  if (delta < -1) return "down";
  return "flat";
}

export class HrStore {
  readonly departments = new Map<string, Department>();
  readonly employees = new Map<string, Employee>();

  static readonly HISTORY = 10;

  apply(e: EventView): boolean {
    const d = obj(e.data);
    switch (e.kind) {
      case "department_update":
      case "department_critical": {
        const id = str(d, "department_id") ?? str(d, "department_name");
        if (!id) return false;
        this.departments.set(id, {
          id,
          name: str(d, "department_name") ?? id,
          risk: str(d, "overall_risk") ?? "unknown",
          engagement: num(d, "engagement_score"),
        });
        return true;
      }
      case "employee_update":
      case "employee_stress": {
        const id = str(d, "employee_id");
        const stress = num(d, "stress_rate");
        if (!id || stress === null) return false;
        const prev = this.employees.get(id);
        const history = [...(prev?.history ?? []), stress].slice(-HrStore.HISTORY);
        this.employees.set(id, {
          id,
          name: str(d, "employee_name") ?? id,
          department: str(d, "department") ?? "",
          position: str(d, "position") ?? "",
          stress,
          history,
        });
        return true;
      }
      default:
        return false;
    }
  }

  /** Employees above [`HIGH_STRESS`], most stressed first. */
  highStress(): Employee[] {
    return [...this.employees.values()]
      .filter((e) => e.stress > HIGH_STRESS)
      .sort((a, b) => b.stress - a.stress);
  }
}

// ---------- merchant risk ----------

export interface Assessment {
  id: string;
  merchant: string;
  score: number | null;
  previous: number | null;
  prediction: { score: number; horizonDays: number | null; confidence: number | null } | null;
}

export interface ListedAlert {
  key: number;
  time: string;
  severity: Severity;
  /** The assessment or client it is about. */
  about: string;
  message: string;
}

export class MerchantStore {
  readonly assessments = new Map<string, Assessment>();
  readonly scores = new SeriesTable(180);
  alerts: ListedAlert[] = [];

  apply(e: EventView): boolean {
    const d = obj(e.data);
    // A merchant backend names the assessment in its URL, not always in
    // the message: the event's subject says it then.
    const id = str(d, "assessment_id") ?? str(d, "assessmentId") ?? subjectId(e.subject, "assessment");
    if (!id) return false;
    const a: Assessment = this.assessments.get(id) ?? {
      id,
      merchant: str(d, "merchant_id") ?? "",
      score: null,
      previous: null,
      prediction: null,
    };
    switch (e.kind) {
      case "riskUpdate": {
        const score = num(d, "score");
        if (score === null) return false;
        a.previous = num(d, "previous_score");
        a.score = score;
        this.scores.add(seconds(e.time), id, score);
        break;
      }
      case "riskPrediction": {
        const score = num(d, "predicted_score");
        if (score === null) return false;
        a.prediction = { score, horizonDays: num(d, "horizon_days"), confidence: num(d, "confidence") };
        break;
      }
      case "riskAlert":
        this.alerts = [
          { key: e.key, time: e.time, severity: e.severity, about: id, message: str(d, "message") ?? e.body },
          ...this.alerts,
        ].slice(0, 30);
        break;
      default:
        return false;
    }
    this.assessments.set(id, a);
    return true;
  }
}

// ---------- compliance ----------

export interface ClientCounters {
  /** `msp/client` from the channel. */
  id: string;
  interactions: number | null;
  lastApp: string | null;
  agents: number | null;
  /** Mean of the departments' engagement. */
  engagement: number | null;
  alerts: number;
}

/** The id of a `kind:id` subject of that kind. */
export function subjectId(subject: string | null, kind: string): string | null {
  if (!subject?.startsWith(`${kind}:`)) return null;
  return subject.slice(kind.length + 1) || null;
}

/** `msp:m/client:c` → `m/c`; anything else as is. */
export function clientOf(channel: string | null): string | null {
  if (!channel) return null;
  const m = /^msp:([^/]+)\/client:(.+)$/.exec(channel);
  return m ? `${m[1]}/${m[2]}` : channel;
}

export class ComplianceStore {
  readonly clients = new Map<string, ClientCounters>();
  alerts: ListedAlert[] = [];

  apply(e: EventView): boolean {
    if (e.kind !== "interaction_update" && e.kind !== "engagement_update" && e.kind !== "alert") {
      return false;
    }
    const d = obj(e.data);
    // The hub's channel names the client; a compliance backend's message
    // carries `client_id` instead.
    const id = clientOf(e.channel) ?? str(d, "client_id");
    if (!id) return false;
    const c: ClientCounters = this.clients.get(id) ?? {
      id,
      interactions: null,
      lastApp: null,
      agents: null,
      engagement: null,
      alerts: 0,
    };
    if (e.kind === "interaction_update") {
      c.interactions = num(d, "total_daily_interactions") ?? c.interactions;
      c.lastApp = str(d, "app_id") ?? c.lastApp;
    } else if (e.kind === "engagement_update") {
      c.agents = num(d, "agents") ?? c.agents;
      const depts = Array.isArray(d?.["departments"]) ? (d["departments"] as unknown[]) : [];
      const values = depts.map((x) => num(obj(x), "engagement")).filter((x): x is number => x !== null);
      if (values.length) c.engagement = values.reduce((s, x) => s + x, 0) / values.length;
    } else {
      c.alerts += 1;
      const details = str(d, "details") ?? e.body;
      this.alerts = [
        { key: e.key, time: e.time, severity: e.severity, about: id, message: details },
        ...this.alerts,
      ].slice(0, 30);
    }
    this.clients.set(id, c);
    return true;
  }
}

// ---------- operations (seed 001's dashboard hub) ----------

export interface Metric {
  /** The field's name as the backend sent it (`total_risks`, `risks.high`). */
  key: string;
  label: string;
  value: number | string | boolean;
}

/** `total_risks` / `criticalRisks` / `risks.high` → "Total risks" / "Critical risks" / "Risks · high". */
export function metricLabel(key: string): string {
  const words = key
    .split(".")
    .map((part) => part.replace(/_/g, " ").replace(/([a-z0-9])([A-Z])/g, "$1 $2").toLowerCase().trim())
    .join(" · ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** The dashboard's latest metrics, whatever fields its backend sends. */
export class OpsStore {
  metrics: Metric[] = [];
  updated: string | null = null;
  readonly series = new SeriesTable(120);

  /** Metrics shown at most; series charted at most. */
  static readonly MAX = 24;
  static readonly CHARTED = 6;

  apply(e: EventView): boolean {
    if (e.kind !== "dashboard_update") return false;
    const d = obj(e.data);
    if (!d) return false;
    const metrics: Metric[] = [];
    const add = (key: string, v: unknown) => {
      if (typeof v === "number" || typeof v === "string" || typeof v === "boolean") {
        metrics.push({ key, label: metricLabel(key), value: v });
      }
    };
    for (const [k, v] of Object.entries(d)) {
      // One level of nesting (an analytics object) is shown as `a.b`.
      const inner = obj(v);
      if (inner) for (const [k2, v2] of Object.entries(inner)) add(`${k}.${k2}`, v2);
      else add(k, v);
    }
    this.metrics = metrics.slice(0, OpsStore.MAX);
    this.updated = e.time;
    const t = seconds(e.time);
    let charted = 0;
    for (const m of this.metrics) {
      if (typeof m.value !== "number" || charted >= OpsStore.CHARTED) continue;
      this.series.add(t, m.label, m.value);
      charted += 1;
    }
    return true;
  }
}

// ---------- all of them ----------

/** Every dashboard's store; `apply` returns the tab that changed, if any. */
export class Desk {
  readonly trading = new TradingStore();
  readonly hr = new HrStore();
  readonly merchant = new MerchantStore();
  readonly compliance = new ComplianceStore();
  readonly operations = new OpsStore();

  apply(e: EventView): Tab | null {
    if (this.trading.apply(e)) return "trading";
    if (this.hr.apply(e)) return "hr";
    if (this.merchant.apply(e)) return "merchant";
    if (this.compliance.apply(e)) return "compliance";
    if (this.operations.apply(e)) return "operations";
    return null;
  }
}

/** What a toast is about: its subject (a department, a session), else
 * its type and title, so that alerts about one thing fold into one toast. */
export function toastKey(e: EventView): string {
  return e.subject ? `${e.source}|${e.subject}` : `${e.source}|${e.kind}|${e.title}`;
}

/** Whether an event deserves a toast. */
export function isImportant(e: EventView): boolean {
  return e.severity === "critical" || e.severity === "emergency";
}
