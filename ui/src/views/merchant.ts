/**
 * The merchant dashboard (seed 001's risk service): each assessment's
 * score, trend and prediction, the score chart and the risk alerts.
 * Reads the desk's store; server text is set as text only.
 */
import { LiveChart } from "../chart";
import { byId, fixed, node, setClass, setText, syncList } from "../dom";
import type { Desk, ListedAlert } from "../store";
import { AlertList } from "./items";

export class MerchantView {
  private readonly el = {
    cards: byId<HTMLDivElement>("assessments"),
    alerts: new AlertList(byId<HTMLOListElement>("merchant-alerts"), (a: ListedAlert) => a.about),
    chart: new LiveChart(byId("score-chart"), 220, "Score", [0, 100]),
    cardEls: new Map<string, HTMLDivElement>(),
  };

  constructor(private readonly desk: Desk) {}

  render(): void {
    const m = this.desk.merchant;
    syncList(
      this.el.cards,
      this.el.cardEls,
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
    this.el.chart.update(m.scores);
    this.el.alerts.render(m.alerts);
  }
}
