/**
 * The events view: the live stream, newest first, at most `CAPACITY`
 * events (market data and state messages included, unlike the inbox).
 * Server text is set as text only.
 */
import { byId, node, syncList } from "../dom";
import type { EventView } from "../ipc";
import { CAPACITY, clockTime, mergeEvents, severityClass } from "../model";

export class EventsView {
  private readonly el = {
    list: byId<HTMLOListElement>("events"),
    empty: byId<HTMLParagraphElement>("empty"),
  };
  private readonly rows = new Map<string, HTMLLIElement>();
  private events: EventView[] = [];

  /** Adds events (from the snapshot or live) to the kept window. */
  add(incoming: readonly EventView[]): void {
    this.events = mergeEvents(this.events, incoming, CAPACITY);
  }

  render(): void {
    syncList(
      this.el.list,
      this.rows,
      this.events,
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
    this.el.empty.hidden = this.events.length > 0;
  }
}
