/**
 * The one file that talks to Tauri. It mirrors the Rust payloads of
 * `src-tauri/src/view.rs` (and the library's `ConnState`) and wraps every
 * command and event the window uses; views never import `@tauri-apps/api`.
 * Each call here is granted in `src-tauri/capabilities/default.json`.
 */
import { invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";

export type Severity = "info" | "warning" | "critical" | "emergency";

/** Why the client stopped for good (`riskwatch::client::StopReason`). */
export type StopReason =
  | { kind: "auth_refused"; detail: string }
  | { kind: "tls"; detail: string }
  | { kind: "shutdown" }
  | { kind: "receiver_gone" };

/** The client's state (`riskwatch::ConnState`). */
export type ConnState =
  | { state: "connecting" }
  | { state: "connected" }
  | { state: "reconnecting"; attempt: number; retry_in_ms: number; error: string }
  | { state: "polling"; error: string }
  | { state: "stopped"; reason: StopReason };

/** What the window shows (`view::LinkState`): the client's state, or
 * `offline` when no client could be started at all. */
export type LinkState = ConnState | { state: "offline"; error: string };

/** One event (`view::EventView`). All text is server text: render it as text. */
export interface EventView {
  /** Local, strictly increasing; merge and dedupe by it. */
  key: number;
  kind: string;
  severity: Severity;
  title: string;
  body: string;
  subject: string | null;
  source: string;
  /** RFC 3339. */
  time: string;
  channel: string | null;
  /** The event's data for the dashboards (server values: render as text). */
  data: unknown;
}

/** `view::InboxCounts`. */
export interface InboxCounts {
  total: number;
  /** Capped at 999. */
  unread: number;
  /** Unacknowledged critical and emergency alerts. */
  critical: number;
  /** RFC 3339, or null when notifications are not paused. */
  paused_until: string | null;
}

/** One stored alert (`view::AlertView`). All text is server text. */
export interface AlertView {
  id: number;
  kind: string;
  severity: Severity;
  title: string;
  body: string;
  subject: string | null;
  source: string;
  channel: string | null;
  time: string;
  /** RFC 3339 when acknowledged, else null. */
  acknowledged: string | null;
}

/** `view::InboxFilter`; every field optional. */
export interface InboxFilter {
  text?: string | null;
  kind?: string | null;
  min_severity?: Severity | null;
  source?: string | null;
  unread_only?: boolean;
  limit?: number | null;
}

/** `view::Snapshot`; `events` oldest first. */
export interface Snapshot {
  state: LinkState;
  events: EventView[];
  source: string;
  demo: boolean;
  inbox: InboxCounts;
  /** The dashboard to open on (`--tab`), if any. */
  tab: string | null;
}

/** Tauri event names (`EVENT_CONN_STATE`, `EVENT_EVENT` in src-tauri). */
const CONN_STATE = "conn-state";
const EVENT = "event";
const INBOX = "inbox";

export interface FeedHandlers {
  state(state: LinkState): void;
  event(event: EventView): void;
  inbox(counts: InboxCounts): void;
}

/**
 * Subscribes to the live feed, then takes a snapshot: listening first means
 * nothing emitted in between is lost (events seen twice share a key). Resolves
 * with the snapshot and a function that unsubscribes. Rejects with the
 * command's error message.
 */
export async function openFeed(
  handlers: FeedHandlers,
): Promise<{ snapshot: Snapshot; close: () => void }> {
  const unlisten: UnlistenFn[] = [];
  const close = () => unlisten.splice(0).forEach((off) => off());
  try {
    unlisten.push(await listen<LinkState>(CONN_STATE, (e) => handlers.state(e.payload)));
    unlisten.push(await listen<EventView>(EVENT, (e) => handlers.event(e.payload)));
    unlisten.push(await listen<InboxCounts>(INBOX, (e) => handlers.inbox(e.payload)));
    const snapshot = await invoke<Snapshot>("snapshot");
    return { snapshot, close };
  } catch (error) {
    close();
    throw new Error(errorText(error));
  }
}

/** Stored alerts matching `filter`, newest first. */
export async function searchInbox(filter: InboxFilter): Promise<AlertView[]> {
  try {
    return await invoke<AlertView[]>("inbox_search", { filter });
  } catch (error) {
    throw new Error(errorText(error));
  }
}

/** Acknowledges alerts by id; resolves with how many changed. New counts
 * follow as an `inbox` event. */
export async function acknowledge(ids: readonly number[]): Promise<number> {
  try {
    return await invoke<number>("inbox_acknowledge", { ids });
  } catch (error) {
    throw new Error(errorText(error));
  }
}

/** Command errors arrive as their message (a string); anything else is
 * stringified. */
function errorText(error: unknown): string {
  if (typeof error === "string") return error;
  if (error instanceof Error) return error.message;
  return String(error);
}
