/**
 * Toasts: a strip under the tabs (never over a dashboard panel) with at most
 * three short-lived messages. Toasts about one subject fold into one,
 * counted ("×3"), with the newest text. Server text is set as text only.
 */
import { node, setClass } from "../dom";
import type { Severity } from "../ipc";
import { severityClass } from "../model";

const MAX_TOASTS = 3;
const TOAST_MS = 6000;

export class Toasts {
  /** The shown toasts by what they are about, each with its expiry timer. */
  private readonly shown = new Map<string, { el: HTMLDivElement; count: number; timer: number }>();

  constructor(private readonly strip: HTMLDivElement) {}

  show(severity: Severity, title: string, body: string, key: string = title): void {
    const old = this.shown.get(key);
    if (old) window.clearTimeout(old.timer);
    const el = old?.el ?? node("div", "toast");
    const count = (old?.count ?? 0) + 1;
    setClass(el, `toast sev-${severityClass(severity)}`);
    el.replaceChildren(node("strong", "", count > 1 ? `${title} ×${count}` : title));
    if (body) el.append(node("span", "", body));
    this.strip.prepend(el);
    const timer = window.setTimeout(() => {
      el.remove();
      this.shown.delete(key);
    }, TOAST_MS);
    this.shown.set(key, { el, count, timer });
    while (this.strip.childElementCount > MAX_TOASTS) {
      const last = this.strip.lastElementChild as HTMLDivElement | null;
      if (!last) break;
      last.remove();
      for (const [k, v] of this.shown) {
        if (v.el === last) {
          window.clearTimeout(v.timer);
          this.shown.delete(k);
        }
      }
    }
  }
}
