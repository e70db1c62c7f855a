import { describe, expect, it } from "vitest";

import { Connections } from "./connection";
import type { LinkState, LinkView } from "./ipc";

const live: LinkState = { state: "connected" };
const retry: LinkState = { state: "reconnecting", attempt: 2, retry_in_ms: 5000, error: "connection refused" };

function link(profile: string, state: LinkState, demo = false): LinkView {
  return { profile, source: `ws://${profile}/ws`, demo, state };
}

describe("Connections", () => {
  it("waits, then takes the snapshot's list", () => {
    const c = new Connections(0);
    expect(c.links.kind).toBe("waiting");
    expect(c.source(0)).toEqual({ text: "", title: "", demo: false });
    expect(c.onSnapshot({ source: "demo", demo: true, links: [link("demo", live, true)] }, 10)).toBe(true);
    expect(c.links).toMatchObject({ kind: "listed", live: false });
    expect(c.source(10)).toEqual({ text: "demo", title: "demo: Live", demo: true });
  });

  it("keeps a links event that came before an older snapshot", () => {
    const c = new Connections(0);
    c.onLinks([link("prod", live)], 5);
    expect(c.onSnapshot({ source: "demo", demo: true, links: [link("demo", live, true)] }, 10)).toBe(false);
    expect(c.list().map((l) => l.profile)).toEqual(["prod"]);
    expect(c.source(10).demo).toBe(false);
    // A later event still replaces it.
    c.onLinks([], 20);
    expect(c.source(20).text).toBe("No connection");
  });

  it("shows the label of a backend that sends no list", () => {
    const c = new Connections(0);
    const snapshot = { source: "ws://h/ws", demo: false, links: undefined as unknown as LinkView[] };
    expect(c.onSnapshot(snapshot, 1)).toBe(false);
    expect(c.links).toEqual({ kind: "label", source: "ws://h/ws", demo: false });
    expect(c.source(1)).toEqual({ text: "ws://h/ws", title: "ws://h/ws", demo: false });
    expect(c.list()).toEqual([]);
  });

  it("tells when the link comes up or goes down, not every change", () => {
    const c = new Connections(0);
    expect(c.setState(retry, 1)).toBe(false); // connecting → reconnecting
    expect(c.setState(live, 2)).toBe(true);
    expect(c.setState(live, 3)).toBe(false);
    expect(c.setState(retry, 4)).toBe(true);
    expect(c.stateAt).toBe(4);
  });

  it("counts down from when the state arrived and names the worst link", () => {
    const c = new Connections(0);
    c.setState(retry, 1000);
    c.onLinks([link("a", live), link("b", retry)], 1000);
    const h = c.header(3000);
    expect(h.text).toBe("Reconnecting in 3 s");
    expect(h.detail).toBe("b: connection refused");
    expect(c.source(3000).title).toBe("a (ws://a/ws): Live\nb (ws://b/ws): Reconnecting in 3 s");
  });

  it("ticks while any link is not live", () => {
    const c = new Connections(0);
    expect(c.ticking()).toBe(true); // connecting
    c.setState(live, 1);
    c.onLinks([link("a", live)], 1);
    expect(c.ticking()).toBe(false);
    c.onLinks([link("a", live), link("b", retry)], 2);
    expect(c.ticking()).toBe(true);
  });
});
