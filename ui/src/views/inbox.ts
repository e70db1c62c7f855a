/**
 * The inbox view: the stored alerts as the filter selects them, a page at
 * a time; a detail pane with the whole message; acknowledgement of one,
 * the selected or every shown alert, and undoing it; export of everything
 * the filter matches. Queries go to the Rust side, which runs them off the
 * main thread; at most one is in flight, the last one wins. Server text is
 * set as text only.
 */
import { byId, node, setClass, setText, syncList } from "../dom";
import {
  acknowledge,
  exportInbox,
  inboxAlert,
  searchInbox,
  unacknowledge,
  type AlertDetail,
  type AlertView,
  type InboxCounts,
} from "../ipc";
import { filterProblem, inboxFilter, Pager, type FilterForm } from "../inbox-model";
import { clockTime, severityClass } from "../model";

export class InboxView {
  private readonly el = {
    list: byId<HTMLOListElement>("inbox"),
    summary: byId<HTMLParagraphElement>("inbox-summary"),
    severity: byId<HTMLSelectElement>("f-severity"),
    kind: byId<HTMLInputElement>("f-kind"),
    source: byId<HTMLInputElement>("f-source"),
    text: byId<HTMLInputElement>("f-text"),
    from: byId<HTMLInputElement>("f-from"),
    to: byId<HTMLInputElement>("f-to"),
    unread: byId<HTMLInputElement>("f-unread"),
    newer: byId<HTMLButtonElement>("page-newer"),
    older: byId<HTMLButtonElement>("page-older"),
    page: byId<HTMLSpanElement>("page-number"),
    detail: byId<HTMLElement>("inbox-detail"),
    dSeverity: byId<HTMLSpanElement>("d-severity"),
    dTitle: byId<HTMLHeadingElement>("d-title"),
    dBody: byId<HTMLParagraphElement>("d-body"),
    dFields: byId<HTMLDListElement>("d-fields"),
    dMessage: byId<HTMLPreElement>("d-message"),
    dAck: byId<HTMLButtonElement>("d-ack"),
    dUnack: byId<HTMLButtonElement>("d-unack"),
    exportCsv: byId<HTMLButtonElement>("export-csv"),
    exportJson: byId<HTMLButtonElement>("export-json"),
  };
  private readonly rows = new Map<string, HTMLLIElement>();
  private shown: AlertView[] = [];
  private readonly selected = new Set<number>();
  private readonly pager = new Pager();
  /** The alert open in the detail pane. */
  private open: AlertDetail | null = null;
  /** Counts the detail pane's openings and closings: a `show` still
   * waiting for its alert when the pane is closed or opened on another
   * one must not open it again. */
  private shownTicket = 0;
  /** Said after the next summary (an export's result). */
  private note = "";
  private busy = false;
  private again = false;

  /**
   * `counts` gives the latest inbox counts for the summary line; `failed`
   * tells the user when an action did not go through.
   */
  constructor(
    private readonly counts: () => InboxCounts,
    private readonly failed: (title: string, message: string) => void,
  ) {
    let debounce: number | undefined;
    const changed = () => {
      window.clearTimeout(debounce);
      debounce = window.setTimeout(() => {
        this.pager.reset();
        void this.refresh();
      }, 200);
    };
    const e = this.el;
    for (const input of [e.severity, e.kind, e.source, e.text, e.from, e.to, e.unread]) {
      input.addEventListener("input", changed);
    }
    byId("inbox-filter").addEventListener("submit", (ev) => ev.preventDefault());
    byId("ack-selected").addEventListener("click", () => void this.ack([...this.selected]));
    byId("ack-shown").addEventListener("click", () =>
      void this.ack(this.shown.filter((a) => a.acknowledged === null).map((a) => a.id)),
    );
    e.newer.addEventListener("click", () => {
      this.pager.newer();
      void this.refresh();
    });
    e.older.addEventListener("click", () => {
      this.pager.older(this.shown.map((a) => a.id));
      void this.refresh();
    });
    e.exportCsv.addEventListener("click", () => void this.export("csv"));
    e.exportJson.addEventListener("click", () => void this.export("json"));
    byId("d-close").addEventListener("click", () => this.close());
    e.dAck.addEventListener("click", () => this.open && void this.ack([this.open.alert.id]));
    e.dUnack.addEventListener("click", () => this.open && void this.unack([this.open.alert.id]));
  }

  private form(): FilterForm {
    const e = this.el;
    return {
      severity: e.severity.value,
      kind: e.kind.value,
      source: e.source.value,
      text: e.text.value,
      unreadOnly: e.unread.checked,
      from: e.from.value,
      to: e.to.value,
    };
  }

  /** Re-queries the page shown; at most one query in flight, the last one
   * wins. */
  async refresh(): Promise<void> {
    if (this.busy) {
      this.again = true;
      return;
    }
    const problem = filterProblem(this.form());
    if (problem) {
      setText(this.el.summary, problem);
      return;
    }
    this.busy = true;
    try {
      this.shown = await searchInbox(inboxFilter(this.form(), this.pager.cursor));
      // A page emptied under us (acknowledged elsewhere, pruned): go back.
      if (this.shown.length === 0 && this.pager.hasNewer) {
        this.pager.newer();
        this.shown = await searchInbox(inboxFilter(this.form(), this.pager.cursor));
      }
      this.render();
      if (this.open) await this.show(this.open.alert.id);
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
    const e = this.el;
    const unread = counts.unread >= 999 ? "999+" : counts.unread;
    setText(
      e.summary,
      `${this.shown.length} shown · ${unread} unread · ${counts.critical} critical unacknowledged · ${counts.total} stored` +
        (this.note ? ` · ${this.note}` : ""),
    );
    e.newer.disabled = !this.pager.hasNewer;
    e.older.disabled = !this.pager.hasOlder(this.shown.map((a) => a.id));
    setText(e.page, `Page ${this.pager.page}`);
    syncList(
      e.list,
      this.rows,
      this.shown,
      (a) => String(a.id),
      (a) => {
        const li = node("li", "event");
        li.dataset.id = String(a.id);
        const box = node("input", "pick");
        box.type = "checkbox";
        box.setAttribute("aria-label", "Select");
        box.addEventListener("change", () => {
          if (box.checked) this.selected.add(a.id);
          else this.selected.delete(a.id);
        });
        // The row's text opens the detail pane (a button: reachable and
        // operable from the keyboard).
        const text = node("button", "text open-detail");
        text.type = "button";
        text.append(node("span", "title"), node("span", "body"));
        text.addEventListener("click", () => void this.show(a.id));
        const ack = node("button", "ack", "Acknowledge");
        ack.type = "button";
        ack.addEventListener("click", () => void this.ack([a.id]));
        const undo = node("button", "unack", "Undo");
        undo.type = "button";
        undo.title = "Mark unacknowledged";
        undo.addEventListener("click", () => void this.unack([a.id]));
        const actions = node("span", "row-actions");
        actions.append(ack, undo);
        li.append(box, node("span", "chip"), node("time", "time"), text, actions);
        return li;
      },
      (li, a) => {
        const selected = this.open?.alert.id === a.id;
        setClass(
          li,
          `event inbox-row sev-${severityClass(a.severity)}${a.acknowledged ? " acked" : ""}${selected ? " selected" : ""}`,
        );
        const [, chip, time, text, actions] = Array.from(li.children) as HTMLElement[];
        setText(chip!, a.severity);
        setText(time!, clockTime(a.time));
        (time as HTMLTimeElement).dateTime = a.time;
        time!.title = new Date(a.time).toLocaleString();
        setText(text!.children[0]!, a.title);
        setText(text!.children[1]!, a.body);
        const [ack, undo] = Array.from(actions!.children) as HTMLButtonElement[];
        ack!.hidden = a.acknowledged !== null;
        undo!.hidden = a.acknowledged === null;
      },
    );
  }

  /** Opens the detail pane on one alert (also from a notification). */
  async show(id: number): Promise<void> {
    const ticket = ++this.shownTicket;
    let detail: AlertDetail | null;
    try {
      detail = await inboxAlert(id);
    } catch (error) {
      if (ticket === this.shownTicket) {
        this.failed("Cannot open the alert", error instanceof Error ? error.message : String(error));
      }
      return;
    }
    // Closed, or opened on another alert, meanwhile.
    if (ticket !== this.shownTicket) return;
    if (!detail) {
      this.close();
      return;
    }
    this.open = detail;
    const e = this.el;
    const a = detail.alert;
    setClass(e.dSeverity, `chip sev-${severityClass(a.severity)}`);
    setText(e.dSeverity, a.severity);
    setText(e.dTitle, a.title);
    setText(e.dBody, a.body);
    const fields: [string, string][] = [
      ["Type", a.kind],
      ["Time", `${new Date(a.time).toLocaleString()}${detail.server_time ? "" : " (when received)"}`],
      ["Received", new Date(detail.received).toLocaleString()],
      ["Acknowledged", a.acknowledged ? new Date(a.acknowledged).toLocaleString() : "no"],
      ["Source", a.source],
      ["Channel", a.channel ?? "–"],
      ["Subject", a.subject ?? "–"],
      ["Backend style", detail.style],
      ["Severity as sent", detail.event_severity],
      ["Event id", detail.event_id ?? "–"],
      ["Sequence", detail.seq === null ? "–" : String(detail.seq)],
    ];
    e.dFields.replaceChildren(...fields.flatMap(([k, v]) => [node("dt", "", k), node("dd", "", v)]));
    setText(e.dMessage, detail.message);
    e.dAck.hidden = a.acknowledged !== null;
    e.dUnack.hidden = a.acknowledged === null;
    e.detail.hidden = false;
    for (const [key, li] of this.rows) li.classList.toggle("selected", key === String(id));
  }

  /** Keyboard: the search box. */
  focusSearch(): void {
    this.el.text.focus();
    this.el.text.select();
  }

  /** Keyboard `a`: the alert open in the pane, else the selected ones. */
  acknowledgeCurrent(): void {
    if (this.open) void this.ack([this.open.alert.id]);
    else void this.ack([...this.selected]);
  }

  /** Keyboard `u`: undoes the open alert's acknowledgement. */
  unacknowledgeCurrent(): void {
    if (this.open) void this.unack([this.open.alert.id]);
  }

  close(): void {
    this.shownTicket++;
    this.open = null;
    this.el.detail.hidden = true;
    for (const li of this.rows.values()) li.classList.remove("selected");
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

  private async unack(ids: number[]): Promise<void> {
    try {
      await unacknowledge(ids);
      await this.refresh();
    } catch (error) {
      this.failed("Cannot undo", error instanceof Error ? error.message : String(error));
    }
  }

  private async export(format: "csv" | "json"): Promise<void> {
    const e = this.el;
    const problem = filterProblem(this.form());
    if (problem) {
      setText(e.summary, problem);
      return;
    }
    e.exportCsv.disabled = e.exportJson.disabled = true;
    try {
      const done = await exportInbox(inboxFilter(this.form(), null), format);
      this.note = `exported ${done.count} to ${done.path}`;
      this.render();
    } catch (error) {
      this.failed("Cannot export", error instanceof Error ? error.message : String(error));
    } finally {
      e.exportCsv.disabled = e.exportJson.disabled = false;
    }
  }
}
