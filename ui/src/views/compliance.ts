/**
 * The compliance dashboard (seed 002): engagement per client and the
 * compliance alerts.
 * Reads the desk's store; server text is set as text only.
 */
import { byId, cell, fixed, row, setText, syncList } from "../dom";
import type { Desk, ListedAlert } from "../store";
import { AlertList } from "./items";

export class ComplianceView {
  private readonly el = {
    clients: byId<HTMLTableSectionElement>("clients"),
    alerts: new AlertList(byId<HTMLOListElement>("compliance-alerts"), (a: ListedAlert) => a.about),
    rows: new Map<string, HTMLTableRowElement>(),
  };

  constructor(private readonly desk: Desk) {}

  render(): void {
    const c = this.desk.compliance;
    syncList(
      this.el.clients,
      this.el.rows,
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
    this.el.alerts.render(c.alerts);
  }
}
