/**
 * Keyboard shortcuts, as a pure function of the key pressed and where
 * focus is, so tests check them without a window:
 *
 * - Ctrl+1 … Ctrl+8: the tabs, in the bar's order.
 * - ← / → / Home / End on the tab bar: the previous, next, first, last
 *   tab (the ARIA tabs pattern).
 * - `/` or Ctrl+F: the inbox's search box.
 * - Ctrl+W: closes the window (the app stays in the tray).
 * - In the inbox, outside a text field: `a` acknowledges the alert open in
 *   the detail pane (else the selected ones), `u` undoes it, Escape closes
 *   the pane.
 */
import type { Tab } from "./store";

export type KeyAction =
  | { kind: "tab"; tab: Tab }
  | { kind: "search" }
  | { kind: "acknowledge" }
  | { kind: "unacknowledge" }
  | { kind: "close" }
  | { kind: "closeWindow" };

/** What a key press needs of the event. */
export interface KeyPress {
  key: string;
  ctrlKey: boolean;
  altKey: boolean;
  metaKey: boolean;
}

/** Where the key was pressed. */
export interface KeyContext {
  tabs: readonly Tab[];
  active: Tab;
  /** Focus is on a tab of the bar. */
  onTabBar: boolean;
  /** Focus is where typing goes (an input, a text area, a select). */
  typing: boolean;
}

export function keyAction(e: KeyPress, at: KeyContext): KeyAction | null {
  const { tabs, active } = at;
  if (e.altKey || e.metaKey) return null;
  if (e.ctrlKey) {
    if (/^[1-9]$/.test(e.key)) {
      const tab = tabs[Number(e.key) - 1];
      return tab ? { kind: "tab", tab } : null;
    }
    if (e.key === "f" || e.key === "F") return { kind: "search" };
    if (e.key === "w" || e.key === "W") return { kind: "closeWindow" };
    return null;
  }
  if (at.onTabBar) {
    const i = tabs.indexOf(active);
    const to: Record<string, number> = {
      ArrowLeft: (i - 1 + tabs.length) % tabs.length,
      ArrowRight: (i + 1) % tabs.length,
      Home: 0,
      End: tabs.length - 1,
    };
    const n = to[e.key];
    if (n !== undefined && tabs[n]) return { kind: "tab", tab: tabs[n] };
  }
  if (at.typing) return null;
  if (e.key === "/") return { kind: "search" };
  if (active !== "inbox") return null;
  switch (e.key) {
    case "a":
      return { kind: "acknowledge" };
    case "u":
      return { kind: "unacknowledge" };
    case "Escape":
      return { kind: "close" };
    default:
      return null;
  }
}
