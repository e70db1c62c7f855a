import { describe, expect, it } from "vitest";

import type { EventView } from "./ipc";
import { badge, mergeEvents, severityClass } from "./model";

function ev(key: number): EventView {
  return {
    key,
    kind: "tick",
    severity: "info",
    title: `t${key}`,
    body: "",
    subject: null,
    source: "demo",
    time: "2025-01-02T03:04:05Z",
    channel: null,
    data: null,
  };
}

describe("mergeEvents", () => {
  it("keeps the newest first, without duplicates, up to the cap", () => {
    const snapshot = [1, 2, 3, 4].map(ev); // oldest first, as the snapshot sends
    const live = [3, 4, 5].map(ev); // overlaps with the snapshot
    const list = mergeEvents(mergeEvents([], snapshot), live, 4);
    expect(list.map((e) => e.key)).toEqual([5, 4, 3, 2]);
  });

  it("does not modify its input", () => {
    const list = [ev(1)];
    mergeEvents(list, [ev(2)]);
    expect(list.map((e) => e.key)).toEqual([1]);
  });
});

describe("badge", () => {
  it("says Live when connected", () => {
    expect(badge({ state: "connected" })).toEqual({ text: "Live", tone: "live", detail: null });
  });

  it("counts down to the next attempt", () => {
    const s = { state: "reconnecting", attempt: 2, retry_in_ms: 4200, error: "refused" } as const;
    expect(badge(s).text).toBe("Reconnecting in 5 s");
    expect(badge(s, 1500).text).toBe("Reconnecting in 3 s");
    expect(badge(s, 9000).text).toBe("Reconnecting in 0 s");
    expect(badge(s).detail).toBe("refused");
  });

  it("names why it stopped", () => {
    const b = badge({ state: "stopped", reason: { kind: "auth_refused", detail: "HTTP 401" } });
    expect(b).toEqual({ text: "Stopped: authentication refused", tone: "down", detail: "HTTP 401" });
    expect(badge({ state: "offline", error: "bad URL" }).text).toBe("Offline");
    expect(badge({ state: "polling", error: "upgrade failed" }).text).toBe("Polling");
  });
});

describe("severityClass", () => {
  it("passes known severities and maps anything else to info", () => {
    expect(severityClass("critical")).toBe("critical");
    expect(severityClass("x onerror=alert(1)")).toBe("info");
  });
});
