/**
 * The operations dashboard (seed 001's `dashboard_update`): the latest
 * metrics as cards and their series on a chart.
 * Reads the desk's store; server text is set as text only.
 */
import { LiveChart } from "../chart";
import { byId, fixed, node, setText, syncList } from "../dom";
import { clockTime } from "../model";
import type { Desk } from "../store";

/** A metric as a person reads it: numbers rounded, times on the clock. */
function metricText(v: number | string | boolean): string {
  if (typeof v === "number") return fixed(v, Number.isInteger(v) ? 0 : 1);
  if (typeof v === "string" && /^\d{4}-\d{2}-\d{2}T/.test(v) && !Number.isNaN(Date.parse(v))) return clockTime(v);
  return String(v);
}

export class OperationsView {
  private readonly el = {
    metrics: byId<HTMLDivElement>("ops-metrics"),
    updated: byId<HTMLSpanElement>("ops-updated"),
    empty: byId<HTMLParagraphElement>("ops-empty"),
    chart: new LiveChart(byId("ops-chart"), 220, "value"),
    cards: new Map<string, HTMLDivElement>(),
  };

  constructor(private readonly desk: Desk) {}

  render(): void {
    const o = this.desk.operations;
    this.el.empty.hidden = o.metrics.length > 0;
    setText(this.el.updated, o.updated ? `· updated ${clockTime(o.updated)}` : "");
    syncList(
      this.el.metrics,
      this.el.cards,
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
    this.el.chart.update(o.series);
  }
}
