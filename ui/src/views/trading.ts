/**
 * The trading dashboard (seed 004): sessions with their P&L and risk
 * utilisation, the emergency-stop banner, the market ticker, the P&L chart,
 * algorithm decisions and risk alerts.
 * Reads the desk's store; server text is set as text only.
 */
import { LiveChart } from "../chart";
import { byId, cell, fixed, node, row, setClass, setText, syncList } from "../dom";
import { clockTime } from "../model";
import { gaugeTone, type Desk, type TradingAlert } from "../store";
import { AlertList } from "./items";

export class TradingView {
  private readonly el = {
    sessions: byId<HTMLTableSectionElement>("sessions"),
    ticker: byId<HTMLDivElement>("ticker"),
    estop: byId<HTMLDivElement>("estop"),
    decisions: byId<HTMLOListElement>("decisions"),
    alerts: new AlertList(byId<HTMLOListElement>("trading-alerts"), (a: TradingAlert) => a.session),
    chart: new LiveChart(byId("pnl-chart"), 220, "P&L"),
    rows: new Map<string, HTMLTableRowElement>(),
    quotes: new Map<string, HTMLSpanElement>(),
    decisionRows: new Map<string, HTMLLIElement>(),
  };

  constructor(private readonly desk: Desk) {}

  render(): void {
    const t = this.desk.trading;
    const sessions = [...t.sessions.values()].sort((a, b) => a.id.localeCompare(b.id));
    syncList(
      this.el.sessions,
      this.el.rows,
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
    this.el.estop.hidden = stopped.length === 0;
    setText(this.el.estop, stopped.length ? `Emergency stop: ${stopped.join(", ")}` : "");
    syncList(
      this.el.ticker,
      this.el.quotes,
      [...t.quotes.values()].sort((a, b) => a.symbol.localeCompare(b.symbol)),
      (q) => q.symbol,
      () => node("span", "quote"),
      (el, q) => {
        setText(el, `${q.symbol} ${q.price.toFixed(2)} ${q.change >= 0 ? "▲" : "▼"}`);
        setClass(el, `quote ${q.change >= 0 ? "pos" : "neg"}`);
      },
    );
    this.el.chart.update(t.pnl);
    syncList(
      this.el.decisions,
      this.el.decisionRows,
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
    this.el.alerts.render(t.alerts);
  }
}
