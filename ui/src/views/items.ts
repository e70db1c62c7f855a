/** List items the dashboards share. Server text is set as text only. */
import { node } from "../dom";
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
