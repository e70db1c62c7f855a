/**
 * The inbox view: the stored alerts as the filter selects them, with
 * acknowledgement of one, the selected or every shown alert. Queries go to
 * the Rust side (`search_inbox`); at most one is in flight, the last one
 * wins. Server text is set as text only.
 */
import { byId, node, setClass, setText, syncList } from "../dom";
import { acknowledge, searchInbox, type AlertView, type InboxCounts, type InboxFilter } from "../ipc";
import { clockTime, severityClass } from "../model";

/** The most alerts one query shows. */
const LIMIT = 200;

export class InboxView {
  private readonly el = {
    list: byId<HTMLOListElement>("inbox"),
    summary: byId<HTMLParagraphElement>("inbox-summary"),
    severity: byId<HTMLSelectElement>("f-severity"),
    kind: byId<HTMLInputElement>("f-kind"),
    source: byId<HTMLInputElement>("f-source"),
    text: byId<HTMLInputElement>("f-text"),
    unread: byId<HTMLInputElement>("f-unread"),
  };
  private readonly rows = new Map<string, HTMLLIElement>();
  private shown: AlertView[] = [];
  private readonly selected = new Set<number>();
  private busy = false;
  private again = false;

  /**
   * `counts` gives the latest inbox counts for the summary line; `failed`
   * tells the user when an acknowledgement did not go through.
   */
  constructor(
    private readonly counts: () => InboxCounts,
    private readonly failed: (title: string, message: string) => void,
  ) {
    let debounce: number | undefined;
    const changed = () => {
      window.clearTimeout(debounce);
      debounce = window.setTimeout(() => void this.refresh(), 200);
    };
    const e = this.el;
    for (const input of [e.severity, e.kind, e.source, e.text, e.unread]) {
      input.addEventListener("input", changed);
    }
    byId("inbox-filter").addEventListener("submit", (ev) => ev.preventDefault());
    byId("ack-selected").addEventListener("click", () => void this.ack([...this.selected]));
    byId("ack-shown").addEventListener("click", () =>
      void this.ack(this.shown.filter((a) => a.acknowledged === null).map((a) => a.id)),
    );
  }

  private filter(): InboxFilter {
    const e = this.el;
    const sev = e.severity.value;
    return {
      min_severity: sev === "warning" || sev === "critical" || sev === "emergency" ? sev : null,
      kind: e.kind.value || null,
      source: e.source.value || null,
      text: e.text.value || null,
      unread_only: e.unread.checked,
      limit: LIMIT,
    };
  }

  /** Re-queries the inbox; at most one query in flight, the last one wins. */
  async refresh(): Promise<void> {
    if (this.busy) {
      this.again = true;
      return;
    }
    this.busy = true;
    try {
      this.shown = await searchInbox(this.filter());
      this.render();
    } catch (error) {
      setText(this.el.summary, error instanceof Error ? error.message : String(error));
    } finally {
      this.busy = false;
      if (this.again) {
        this.again = false;
        void this.refresh();
      }
    }
  }

  private render(): void {
    const counts = this.counts();
    setText(
      this.el.summary,
      `${this.shown.length} shown · ${counts.unread >= 999 ? "999+" : counts.unread} unread · ${counts.critical} critical unacknowledged · ${counts.total} stored`,
    );
    syncList(
      this.el.list,
      this.rows,
      this.shown,
      (a) => String(a.id),
      (a) => {
        const li = node("li", "event");
        const box = node("input", "pick");
        box.type = "checkbox";
        box.addEventListener("change", () => {
          if (box.checked) this.selected.add(a.id);
          else this.selected.delete(a.id);
        });
        const text = node("div", "text");
        text.append(node("span", "title", a.title));
        if (a.body) text.append(node("span", "body", a.body));
        const ack = node("button", "ack", "Acknowledge");
        ack.type = "button";
        ack.addEventListener("click", () => void this.ack([a.id]));
        li.append(box, node("span", "chip", a.severity), node("time", "time", clockTime(a.time)), text, ack);
        return li;
      },
      (li, a) => {
        setClass(li, `event inbox-row sev-${severityClass(a.severity)}${a.acknowledged ? " acked" : ""}`);
        (li.lastElementChild as HTMLButtonElement).hidden = a.acknowledged !== null;
      },
    );
  }

  private async ack(ids: number[]): Promise<void> {
    if (ids.length === 0) return;
    try {
      await acknowledge(ids);
      for (const id of ids) this.selected.delete(id);
      await this.refresh();
    } catch (error) {
      this.failed("Cannot acknowledge", error instanceof Error ? error.message : String(error));
    }
  }
}
