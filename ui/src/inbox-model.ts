/**
 * The inbox's pure model: the filter a form gives, dates as the user
 * means them (local days), and paging by cursor (the last id of each
 * page), so that a page neither repeats nor skips an alert while new ones
 * arrive at the top.
 */
import type { InboxFilter, Severity } from "./ipc";

/** Alerts per page. */
export const PAGE_SIZE = 100;

/** What the inbox's filter form holds. */
export interface FilterForm {
  severity: string;
  kind: string;
  source: string;
  text: string;
  unreadOnly: boolean;
  /** `YYYY-MM-DD` from a date input, or "". */
  from: string;
  to: string;
}

/** Local midnight of a `YYYY-MM-DD` day, plus `days`; null if not a day. */
export function localDay(value: string, days = 0): Date | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value.trim());
  if (!m) return null;
  const d = new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]) + days);
  return Number.isNaN(d.getTime()) ? null : d;
}

/** The query for one page of the form: `from` from its first moment,
 * `to` through its last (both local days). */
export function inboxFilter(form: FilterForm, beforeId: number | null, limit = PAGE_SIZE): InboxFilter {
  const sev = form.severity;
  const severity: Severity | null =
    sev === "warning" || sev === "critical" || sev === "emergency" ? sev : null;
  const since = localDay(form.from);
  const until = localDay(form.to, 1);
  return {
    min_severity: severity,
    kind: form.kind.trim() || null,
    source: form.source.trim() || null,
    text: form.text.trim() || null,
    unread_only: form.unreadOnly,
    since: since ? since.toISOString() : null,
    until: until ? until.toISOString() : null,
    before_id: beforeId,
    limit,
  };
}

/** Why the form cannot be searched as it is, or null. */
export function filterProblem(form: FilterForm): string | null {
  const from = localDay(form.from);
  const to = localDay(form.to);
  if (from && to && from > to) return "The From day is after the To day.";
  return null;
}

/**
 * Pages by cursor: page n shows alerts older than the last id of page
 * n − 1. Going back pops; a new filter starts again at the first page.
 */
export class Pager {
  private cursors: (number | null)[] = [null];

  /** The `before_id` of the page shown. */
  get cursor(): number | null {
    return this.cursors[this.cursors.length - 1] ?? null;
  }

  /** 1-based. */
  get page(): number {
    return this.cursors.length;
  }

  get hasNewer(): boolean {
    return this.cursors.length > 1;
  }

  /** Whether a page of `shown` ids may have an older one after it. */
  hasOlder(shown: readonly number[], limit = PAGE_SIZE): boolean {
    return shown.length >= limit;
  }

  /** To the next older page, after the last of `shown`. */
  older(shown: readonly number[]): void {
    const last = shown[shown.length - 1];
    if (last !== undefined) this.cursors.push(last);
  }

  newer(): void {
    if (this.cursors.length > 1) this.cursors.pop();
  }

  reset(): void {
    this.cursors = [null];
  }
}
