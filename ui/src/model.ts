/**
 * Pure helpers behind the view: the newest-first event list and the text
 * of the connection badge. No DOM, no Tauri, so unit tests call them directly.
 */
import type { EventView, LinkState, Severity, StopReason } from "./ipc";

/** Events kept on screen, as many as the Rust side keeps. */
export const CAPACITY = 50;

/**
 * Merges `incoming` into a newest-first list: duplicates (same key) are
 * dropped and only the newest `cap` kept. Returns a new array.
 */
export function mergeEvents(
  list: readonly EventView[],
  incoming: readonly EventView[],
  cap = CAPACITY,
): EventView[] {
  const byKey = new Map<number, EventView>();
  for (const e of list) byKey.set(e.key, e);
  for (const e of incoming) byKey.set(e.key, e);
  return [...byKey.values()].sort((a, b) => b.key - a.key).slice(0, cap);
}

export type Tone = "live" | "pending" | "down";

export interface Badge {
  text: string;
  tone: Tone;
  /** The error behind a non-live state, shown under the header. */
  detail: string | null;
}

/**
 * The badge for `state`; `elapsedMs` is how long ago the state arrived, for
 * the reconnect countdown.
 */
export function badge(state: LinkState, elapsedMs = 0): Badge {
  switch (state.state) {
    case "connected":
      return { text: "Live", tone: "live", detail: null };
    case "connecting":
      return { text: "Connecting", tone: "pending", detail: null };
    case "reconnecting": {
      const s = Math.max(0, Math.ceil((state.retry_in_ms - elapsedMs) / 1000));
      return { text: `Reconnecting in ${s} s`, tone: "pending", detail: state.error };
    }
    case "polling":
      return { text: "Polling", tone: "pending", detail: state.error };
    case "offline":
      return { text: "Offline", tone: "down", detail: state.error };
    case "stopped":
      return {
        text: `Stopped: ${stopText(state.reason)}`,
        tone: "down",
        detail: "detail" in state.reason ? state.reason.detail : null,
      };
  }
}

function stopText(reason: StopReason): string {
  switch (reason.kind) {
    case "auth_refused":
      return "authentication refused";
    case "tls":
      return "TLS failure";
    case "shutdown":
      return "shut down";
    case "receiver_gone":
      return "nobody is listening";
  }
}

const SEVERITIES: readonly Severity[] = ["info", "warning", "critical", "emergency"];

/** The severity as a known CSS class suffix, whatever arrives. */
export function severityClass(s: string): Severity {
  return (SEVERITIES as readonly string[]).includes(s) ? (s as Severity) : "info";
}

/** Local wall-clock time of an RFC 3339 timestamp, `HH:MM:SS`. */
export function clockTime(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  return d.toLocaleTimeString([], { hour12: false });
}
