import { describe, expect, it } from "vitest";

import type { EventView, Severity } from "./ipc";
import {
  ComplianceStore,
  Desk,
  HrStore,
  MerchantStore,
  OpsStore,
  SeriesTable,
  TradingStore,
  clientOf,
  gaugeTone,
  metricLabel,
  riskClass,
  toastKey,
  trend,
} from "./store";

let nextKey = 1;
function ev(kind: string, data: unknown, opts: { time?: string; channel?: string; severity?: Severity } = {}): EventView {
  return {
    key: nextKey++,
    kind,
    severity: opts.severity ?? "info",
    title: kind,
    body: "",
    subject: null,
    source: "demo",
    time: opts.time ?? "2025-01-02T03:04:05Z",
    channel: opts.channel ?? null,
    data,
  };
}

describe("SeriesTable", () => {
  it("aligns series by time and keeps the last rows", () => {
    const t = new SeriesTable(3);
    t.add(1, "a", 10);
    t.add(1, "b", 20);
    t.add(2, "a", 11);
    t.add(3, "b", 21);
    t.add(4, "a", 12);
    expect(t.data()).toEqual([
      [2, 3, 4],
      [11, null, 12],
      [null, 21, null],
    ]);
  });

  it("puts a late point in its row and ignores one too old", () => {
    const t = new SeriesTable(5);
    t.add(1, "a", 1);
    t.add(2, "a", 2);
    t.add(1, "b", 5);
    t.add(0, "b", 9);
    expect(t.data()).toEqual([
      [1, 2],
      [1, 2],
      [5, null],
    ]);
  });
});

describe("TradingStore", () => {
  it("tracks sessions, P&L, emergency stops, decisions and quotes", () => {
    const s = new TradingStore();
    const status = (st: string, pnl: number, util: number, time: string) =>
      ev("session_status", { sessionId: "S1", status: st, data: { currentPnL: pnl, totalTrades: 3, lossLimitUtilization: util } }, { time });
    expect(s.apply(status("active", -10, 50, "2025-01-02T03:04:05Z"))).toBe(true);
    expect(s.apply(status("emergency_stopped", -100, 100, "2025-01-02T03:04:06Z"))).toBe(true);
    expect(s.stopped.has("S1")).toBe(true);
    expect(s.pnl.data()[1]).toEqual([-10, -100]);
    s.apply(status("active", 0, 0, "2025-01-02T03:04:07Z"));
    expect(s.stopped.size).toBe(0);
    s.apply(ev("algorithm_decision", { sessionId: "S1", decision: "buy", reasoning: "<b>x</b>", confidence: 0.8, marketData: { symbol: "SPY" } }));
    expect(s.decisions[0]).toMatchObject({ decision: "buy", reasoning: "<b>x</b>", confidence: 0.8, symbol: "SPY" });
    s.apply(ev("market_data", { symbol: "SPY", price: 100 }));
    s.apply(ev("market_data", { symbol: "SPY", price: 99.5 }));
    expect(s.quotes.get("SPY")).toEqual({ symbol: "SPY", price: 99.5, change: -0.5 });
  });

  it("ignores malformed payloads", () => {
    const s = new TradingStore();
    expect(s.apply(ev("session_status", null))).toBe(false);
    expect(s.apply(ev("session_status", { sessionId: 5, data: "x" }))).toBe(true);
    expect(s.sessions.get("5")?.pnl).toBeNull();
    expect(s.apply(ev("market_data", { symbol: "SPY", price: "1" }))).toBe(false);
  });

  it("warns at 80 % and stops at 100 %", () => {
    expect(gaugeTone(79.9)).toBe("ok");
    expect(gaugeTone(80)).toBe("warn");
    expect(gaugeTone(100)).toBe("stop");
    expect(gaugeTone(null)).toBe("ok");
  });
});

describe("HrStore", () => {
  it("colours departments and lists stressed employees with a trend", () => {
    const s = new HrStore();
    s.apply(ev("department_update", { department_id: "eng", department_name: "Engineering", overall_risk: "high", engagement_score: 70 }));
    expect(s.departments.get("eng")).toMatchObject({ name: "Engineering", risk: "high", engagement: 70 });
    for (const stress of [30, 42, 50]) {
      s.apply(ev("employee_update", { employee_id: "E1", employee_name: "Ann", department: "Engineering", stress_rate: stress }));
    }
    s.apply(ev("employee_update", { employee_id: "E2", employee_name: "Bo", stress_rate: 20 }));
    const high = s.highStress();
    expect(high.map((e) => e.id)).toEqual(["E1"]);
    expect(trend(high[0]!.history)).toBe("up");
    expect(riskClass("CRITICAL")).toBe("critical");
    expect(riskClass("x onerror=1")).toBe("unknown");
  });
});

describe("MerchantStore", () => {
  it("keeps scores, history, the latest prediction and alerts", () => {
    const s = new MerchantStore();
    s.apply(ev("riskUpdate", { assessment_id: "as-1", merchant_id: "m1", score: 50, previous_score: 48 }, { time: "2025-01-02T03:04:05Z" }));
    s.apply(ev("riskUpdate", { assessment_id: "as-1", merchant_id: "m1", score: 55, previous_score: 50 }, { time: "2025-01-02T03:04:07Z" }));
    s.apply(ev("riskPrediction", { assessment_id: "as-1", predicted_score: 60, horizon_days: 30, confidence: 0.7 }));
    s.apply(ev("riskAlert", { assessment_id: "as-1", message: "crossed 50" }, { severity: "warning" }));
    const a = s.assessments.get("as-1")!;
    expect(a).toMatchObject({ score: 55, previous: 50, prediction: { score: 60, horizonDays: 30, confidence: 0.7 } });
    expect(s.scores.data()[1]).toEqual([50, 55]);
    expect(s.alerts[0]).toMatchObject({ about: "as-1", message: "crossed 50", severity: "warning" });
  });
});

describe("ComplianceStore", () => {
  it("counts interactions, engagement and alerts per client from the channel", () => {
    const s = new ComplianceStore();
    const channel = "msp:m1/client:c1";
    s.apply(ev("interaction_update", { app_id: "crm", interaction_count: 3, total_daily_interactions: 10 }, { channel }));
    s.apply(ev("engagement_update", { departments: [{ engagement: 40 }, { engagement: 60 }], agents: 4 }, { channel }));
    s.apply(ev("alert", { details: "<script>alert(1)</script>" }, { channel, severity: "critical" }));
    expect(s.clients.get("m1/c1")).toEqual({ id: "m1/c1", interactions: 10, lastApp: "crm", agents: 4, engagement: 50, alerts: 1 });
    expect(s.alerts[0]!.message).toBe("<script>alert(1)</script>");
    expect(clientOf("dashboard")).toBe("dashboard");
  });
});

describe("Desk", () => {
  it("routes each event to its dashboard", () => {
    const d = new Desk();
    expect(d.apply(ev("market_data", { symbol: "SPY", price: 1 }))).toBe("trading");
    expect(d.apply(ev("department_update", { department_id: "x" }))).toBe("hr");
    expect(d.apply(ev("riskUpdate", { assessment_id: "a", score: 1 }))).toBe("merchant");
    expect(d.apply(ev("alert", {}, { channel: "msp:m/client:c" }))).toBe("compliance");
    expect(d.apply(ev("dashboard_update", {}))).toBe("operations");
  });
});

describe("the dashboards fill from every source", () => {
  it("reads a seed backend's messages as the hub relays them (payload fields merged)", () => {
    const t = new TradingStore();
    // seed 004 direct: `data`'s metrics merged beside sessionId and status.
    t.apply(ev("session_status", { sessionId: "S9", status: "paused", currentPnL: -42, totalTrades: 7, lossLimitUtilization: 30 }));
    expect(t.sessions.get("S9")).toMatchObject({ status: "paused", pnl: -42, trades: 7, utilization: 30 });

    const c = new ComplianceStore();
    // seed 002 direct: no hub channel, the client in `client_id`.
    expect(c.apply(ev("interaction_update", { client_id: "c7", total_daily_interactions: 150, app_id: "chat" }))).toBe(true);
    expect(c.clients.get("c7")).toMatchObject({ interactions: 150, lastApp: "chat" });

    const m = new MerchantStore();
    // seed 000 direct: the assessment named by the URL, carried as the subject.
    const update = ev("riskUpdate", { score: 71, previous_score: 60 });
    update.subject = "assessment:as-3";
    expect(m.apply(update)).toBe(true);
    expect(m.assessments.get("as-3")).toMatchObject({ score: 71, previous: 60 });
  });
});

describe("OpsStore", () => {
  it("shows whatever fields a dashboard hub sends, one level of nesting included", () => {
    const o = new OpsStore();
    expect(o.apply(ev("risk_alert", {}))).toBe(false);
    expect(
      o.apply(ev("dashboard_update", { total_risks: 120, averageScore: 55.5, generated_at: "now", risks: { high: 15, mitigated: 8 }, list: [1, 2] })),
    ).toBe(true);
    expect(o.metrics.map((m) => [m.label, m.value])).toEqual([
      ["Total risks", 120],
      ["Average score", 55.5],
      ["Generated at", "now"],
      ["Risks · high", 15],
      ["Risks · mitigated", 8],
    ]);
    expect(o.updated).toBe("2025-01-02T03:04:05Z");
    expect(o.series.data().length).toBe(1 + 4);
  });

  it("labels keys for people", () => {
    expect(metricLabel("critical_risks")).toBe("Critical risks");
    expect(metricLabel("mitigatedLast24h")).toBe("Mitigated last24h");
  });
});

describe("toastKey", () => {
  it("folds alerts about one subject, keeps other ones apart", () => {
    const a = ev("department_update", {}, { severity: "critical" });
    a.subject = "department:Finance";
    const b = ev("department_critical", {}, { severity: "critical" });
    b.subject = "department:Finance";
    const c = ev("risk_alert", {}, { severity: "critical" });
    expect(toastKey(a)).toBe(toastKey(b));
    expect(toastKey(a)).not.toBe(toastKey(c));
  });
});
