/** List items the dashboards share. Server text is set as text only. */
import { node, syncList } from "../dom";
import type { Severity } from "../ipc";
import { clockTime, severityClass } from "../model";

/** An alert in a dashboard's alert list: severity, time, subject, message. */
export function alertItem(time: string, severity: Severity, about: string, message: string): HTMLLIElement {
  const li = node("li", `item sev-${severityClass(severity)}`);
  const head = node("div", "head");
  head.append(node("span", "chip", severity), node("span", "time", clockTime(time)), node("strong", "", about));
  li.append(head, node("div", "", message));
  return li;
}

/** What an alert list shows of an alert. */
interface Listed {
  key: number;
  time: string;
  severity: Severity;
  message: string;
}

/** A dashboard's alert list, newest first; `about` names each alert's subject. */
export class AlertList<A extends Listed> {
  private readonly rows = new Map<string, HTMLLIElement>();

  constructor(
    private readonly list: HTMLOListElement,
    private readonly about: (a: A) => string,
  ) {}

  render(alerts: readonly A[]): void {
    syncList(
      this.list,
      this.rows,
      alerts,
      (a) => String(a.key),
      (a) => alertItem(a.time, a.severity, this.about(a), a.message),
      () => {},
    );
  }
}
