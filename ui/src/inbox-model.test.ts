import { describe, expect, it } from "vitest";

import { filterProblem, inboxFilter, localDay, Pager, PAGE_SIZE, type FilterForm } from "./inbox-model";

const blank: FilterForm = {
  severity: "",
  kind: "",
  source: "",
  text: "",
  unreadOnly: false,
  from: "",
  to: "",
};

describe("inboxFilter", () => {
  it("sends nothing the form leaves blank", () => {
    expect(inboxFilter(blank, null)).toEqual({
      min_severity: null,
      kind: null,
      source: null,
      text: null,
      unread_only: false,
      since: null,
      until: null,
      before_id: null,
      limit: PAGE_SIZE,
    });
  });

  it("reads days as local days, To through its last moment", () => {
    const f = inboxFilter({ ...blank, from: "2026-03-01", to: "2026-03-02" }, 42);
    expect(f.since).toBe(new Date(2026, 2, 1).toISOString());
    expect(f.until).toBe(new Date(2026, 2, 3).toISOString());
    expect(f.before_id).toBe(42);
  });

  it("trims text and ignores an unknown severity", () => {
    const f = inboxFilter({ ...blank, severity: "bogus", text: "  loss limit ", kind: " risk_alert" }, null);
    expect(f.min_severity).toBeNull();
    expect(f.text).toBe("loss limit");
    expect(f.kind).toBe("risk_alert");
    expect(inboxFilter({ ...blank, severity: "critical" }, null).min_severity).toBe("critical");
  });

  it("refuses nonsense days and a From after To", () => {
    expect(localDay("2026-13-45x")).toBeNull();
    expect(localDay("")).toBeNull();
    expect(filterProblem({ ...blank, from: "2026-03-02", to: "2026-03-01" })).toMatch(/after/);
    expect(filterProblem({ ...blank, from: "2026-03-01", to: "2026-03-01" })).toBeNull();
  });
});

describe("Pager", () => {
  it("pages older by the last id shown and back again", () => {
    const p = new Pager();
    expect([p.page, p.cursor, p.hasNewer]).toEqual([1, null, false]);
    const first = Array.from({ length: PAGE_SIZE }, (_, i) => 1000 - i);
    expect(p.hasOlder(first)).toBe(true);
    p.older(first);
    expect([p.page, p.cursor, p.hasNewer]).toEqual([2, 901, true]);
    expect(p.hasOlder([900, 899])).toBe(false);
    p.newer();
    expect([p.page, p.cursor]).toEqual([1, null]);
    p.newer();
    expect(p.page).toBe(1);
    p.older(first);
    p.reset();
    expect([p.page, p.cursor]).toEqual([1, null]);
  });

  it("does not move on an empty page", () => {
    const p = new Pager();
    p.older([]);
    expect(p.page).toBe(1);
  });
});
