/**
 * The header: the connection badge and its detail line, the Demo badge, the
 * real-time indicator, the source line, the unread count, the paused and
 * history-gap notices. Reads the connection store and the inbox counts;
 * holds no state of its own.
 */
import type { Connections } from "../connection";
import { byId, setClass, setText } from "../dom";
import type { InboxCounts } from "../ipc";
import { clockTime } from "../model";

/** How recent the last event must be for the indicator to say "live". */
const LIVE_MS = 3000;

export class HeaderView {
  private readonly el = {
    conn: byId<HTMLSpanElement>("conn"),
    demo: byId<HTMLSpanElement>("demo"),
    realtime: byId<HTMLSpanElement>("realtime"),
    paused: byId<HTMLSpanElement>("paused"),
    gap: byId<HTMLParagraphElement>("gap"),
    source: byId<HTMLSpanElement>("source"),
    detail: byId<HTMLParagraphElement>("detail"),
    unread: byId<HTMLSpanElement>("unread"),
  };

  render(conn: Connections, counts: InboxCounts, rate: number, lastEventAt: number, now: number): void {
    const ui = this.el;
    const h = conn.header(now);
    setText(ui.conn, h.text);
    setClass(ui.conn, `badge tone-${h.tone}`);
    setText(ui.detail, h.detail ?? "");
    ui.detail.hidden = h.detail === null;
    const live = now - lastEventAt < LIVE_MS;
    setText(ui.realtime, live ? `Real-time updates · ${rate}/s` : "Real-time updates · idle");
    setClass(ui.realtime, `realtime ${live ? "on" : "off"}`);
    ui.unread.hidden = counts.unread === 0;
    setText(ui.unread, counts.unread >= 999 ? "999+" : String(counts.unread));
    setClass(ui.unread, counts.critical > 0 ? "count critical" : "count");
    ui.paused.hidden = counts.paused_until === null;
    if (counts.paused_until) {
      setText(ui.paused, `Notifications paused until ${clockTime(counts.paused_until)} (emergencies still shown)`);
    }
    // A history gap stays in sight until its inbox entry is acknowledged.
    ui.gap.hidden = counts.gap === null;
    setText(ui.gap, counts.gap ?? "");
  }

  /** The source line, its tooltip and the Demo badge. */
  renderSource(conn: Connections, now: number): void {
    const s = conn.source(now);
    setText(this.el.source, s.text);
    if (this.el.source.title !== s.title) this.el.source.title = s.title;
    this.el.demo.hidden = !s.demo;
  }
}
