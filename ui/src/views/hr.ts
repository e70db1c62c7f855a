/**
 * The HR dashboard (seed 003): department risk cards and the employees
 * under high stress with their trend.
 * Reads the desk's store; server text is set as text only.
 */
import { byId, cell, fixed, node, row, setClass, setText, syncList } from "../dom";
import { riskClass, trend, type Desk } from "../store";

export class HrView {
  private readonly el = {
    departments: byId<HTMLDivElement>("departments"),
    stressed: byId<HTMLTableSectionElement>("stressed"),
    cards: new Map<string, HTMLDivElement>(),
    rows: new Map<string, HTMLTableRowElement>(),
  };

  constructor(private readonly desk: Desk) {}

  render(): void {
    const depts = [...this.desk.hr.departments.values()].sort((a, b) => a.name.localeCompare(b.name));
    syncList(
      this.el.departments,
      this.el.cards,
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
      this.el.stressed,
      this.el.rows,
      this.desk.hr.highStress(),
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
}
