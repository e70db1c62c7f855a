import { describe, expect, it } from "vitest";

import { keyAction, type KeyContext, type KeyPress } from "./keys";
import { TABS } from "./store";

const press = (key: string, mods: Partial<KeyPress> = {}): KeyPress => ({
  key,
  ctrlKey: false,
  altKey: false,
  metaKey: false,
  ...mods,
});
const at = (over: Partial<KeyContext> = {}): KeyContext => ({
  tabs: TABS,
  active: "trading",
  onTabBar: false,
  typing: false,
  ...over,
});

describe("keyAction", () => {
  it("Ctrl+digit picks the tab in the bar's order, also while typing", () => {
    expect(keyAction(press("1", { ctrlKey: true }), at())).toEqual({ kind: "tab", tab: TABS[0] });
    expect(keyAction(press("6", { ctrlKey: true }), at({ typing: true }))).toEqual({ kind: "tab", tab: TABS[5] });
    expect(keyAction(press("9", { ctrlKey: true }), at())).toBeNull();
    expect(keyAction(press("1", { ctrlKey: true, altKey: true }), at())).toBeNull();
  });

  it("arrows, Home and End move along the tab bar and wrap", () => {
    const bar = at({ onTabBar: true, active: TABS[0] });
    expect(keyAction(press("ArrowLeft"), bar)).toEqual({ kind: "tab", tab: TABS[TABS.length - 1] });
    expect(keyAction(press("ArrowRight"), bar)).toEqual({ kind: "tab", tab: TABS[1] });
    expect(keyAction(press("End"), bar)).toEqual({ kind: "tab", tab: TABS[TABS.length - 1] });
    expect(keyAction(press("Home"), at({ onTabBar: true, active: "inbox" }))).toEqual({ kind: "tab", tab: TABS[0] });
    expect(keyAction(press("ArrowRight"), at())).toBeNull();
  });

  it("/ and Ctrl+F go to the search, but / types a slash in a text field", () => {
    expect(keyAction(press("/"), at())).toEqual({ kind: "search" });
    expect(keyAction(press("/"), at({ typing: true }))).toBeNull();
    expect(keyAction(press("f", { ctrlKey: true }), at({ typing: true }))).toEqual({ kind: "search" });
  });

  it("Ctrl+W closes the window from anywhere, also while typing; W alone types", () => {
    expect(keyAction(press("w", { ctrlKey: true }), at())).toEqual({ kind: "closeWindow" });
    expect(keyAction(press("w", { ctrlKey: true }), at({ typing: true }))).toEqual({ kind: "closeWindow" });
    expect(keyAction(press("w"), at({ active: "inbox" }))).toBeNull();
  });

  it("a, u and Escape act in the inbox only, never while typing", () => {
    const inbox = at({ active: "inbox" });
    expect(keyAction(press("a"), inbox)).toEqual({ kind: "acknowledge" });
    expect(keyAction(press("u"), inbox)).toEqual({ kind: "unacknowledge" });
    expect(keyAction(press("Escape"), inbox)).toEqual({ kind: "close" });
    expect(keyAction(press("a"), at({ active: "trading" }))).toBeNull();
    expect(keyAction(press("a"), at({ active: "inbox", typing: true }))).toBeNull();
  });
});
