/**
 * The one file that talks to Tauri. It mirrors the Rust payloads of
 * `src-tauri/src/view.rs` (and the library's `ConnState`) and wraps every
 * command and event the window uses; views never import `@tauri-apps/api`.
 * Each call here is granted in `src-tauri/capabilities/default.json`.
 */
import { invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";
import { getCurrentWindow } from "@tauri-apps/api/window";

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
  /** The newest unacknowledged history gap, as a sentence; null: none. */
  gap: string | null;
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
  /** Words, each matched as a prefix, case and accents ignored. */
  text?: string | null;
  kind?: string | null;
  min_severity?: Severity | null;
  source?: string | null;
  unread_only?: boolean;
  /** RFC 3339: alerts at or after `since` and before `until`. */
  since?: string | null;
  until?: string | null;
  /** Paging: only alerts older than this id. */
  before_id?: number | null;
  limit?: number | null;
}

/** One alert whole (`view::AlertDetail`). All text is server text. */
export interface AlertDetail {
  alert: AlertView;
  /** The message as received, indented. */
  message: string;
  style: string;
  event_id: string | null;
  seq: number | null;
  /** Whether `alert.time` is the server's (false: the receipt time). */
  server_time: boolean;
  /** RFC 3339. */
  received: string;
  /** Severity as decoded, before the user's rules. */
  event_severity: Severity;
}

/** Where an export went (`view::ExportView`). */
export interface ExportView {
  path: string;
  count: number;
}

/** One running connection (`view::LinkView`): a profile, the demo, or `--url`. */
export interface LinkView {
  /** `demo` for the built-in demo, `cli` for `--url`. */
  profile: string;
  /** The URL without credentials. */
  source: string;
  demo: boolean;
  state: LinkState;
}

/** A connection profile (`view::ProfileView`). Never carries the token. */
export interface ProfileView {
  name: string;
  /** null for the demo and for a preferences-only profile. */
  url: string | null;
  /** null: guessed from the URL. */
  style: string | null;
  subscribe: string[];
  /** The OS keyring holds a token for it. */
  has_token: boolean;
  /** Why the keyring could not be asked. */
  keyring_error: string | null;
  demo: boolean;
  /** Its connection, when one is running. */
  link: LinkView | null;
}

/** What Settings sends to create or change a profile (`view::ProfileInput`). */
export interface ProfileInput {
  name: string;
  url: string;
  /** null or "": guess from the URL. */
  style?: string | null;
  subscribe?: string[];
  /** A new token for the OS keyring; null or "" keeps the stored one. */
  token?: string | null;
  /** Remove the stored token. */
  clear_token?: boolean;
}

/** The backend styles a profile may name (`riskwatch::protocol::Style`). */
export const STYLES = ["merchant", "dashboard", "compliance", "hr", "trading", "native"] as const;

/** `view::QuietHoursForm`: `HH:MM` wall-clock times in an IANA zone. */
export interface QuietHoursForm {
  start: string;
  end: string;
  timezone: string;
  allow: Severity;
}

/** `view::MuteView`: a mute (`until` null) or a snooze. */
export interface MuteView {
  kind: "source" | "subject" | "type" | "channel";
  value: string;
  /** RFC 3339, or null for a mute until removed. */
  until: string | null;
}

/** `view::PrefsForm`. */
export interface PrefsForm {
  /** Minimum severity to list (and store). */
  list: Severity;
  /** Minimum severity to notify. */
  notify: Severity;
  quiet_hours: QuietHoursForm | null;
  /** Threshold rules, one per entry (docs/RULES.md). */
  rules: string[];
  mutes: MuteView[];
  /** Days the inbox keeps alerts; null: forever. */
  keep_days: number | null;
}

/** `view::PrefsView`: the form and the whole file. */
export interface PrefsView {
  profile: string;
  form: PrefsForm;
  /** The preferences file as TOML. */
  text: string;
  path: string;
}

/** `view::Snapshot`; `events` oldest first. */
export interface Snapshot {
  /** The worst state of all connections. */
  state: LinkState;
  /** Every running connection. */
  links: LinkView[];
  events: EventView[];
  source: string;
  demo: boolean;
  inbox: InboxCounts;
  /** The dashboard to open on: the one the window last showed (a window
   * opened again after it was closed), at first `--tab`; null: the default. */
  tab: string | null;
  /** The alert to show in the inbox (a notification's Open that opened this
   * window), if any. */
  open_alert: number | null;
}

/** Tauri event names (`EVENT_CONN_STATE`, `EVENT_EVENT` in src-tauri). */
const CONN_STATE = "conn-state";
const EVENT = "event";
const INBOX = "inbox";
const OPEN_ALERT = "open-alert";
const SELECT_TAB = "select-tab";
const LINKS = "links";

export interface FeedHandlers {
  /** The worst state of all connections changed. */
  state(state: LinkState): void;
  event(event: EventView): void;
  inbox(counts: InboxCounts): void;
  /** A connection started, stopped or changed state. */
  links(links: LinkView[]): void;
  /** A notification was opened: show the inbox, on this alert (null: the
   * inbox alone). */
  openAlert(id: number | null): void;
  /** A second launch asked for this tab (`--tab`). */
  selectTab(tab: string): void;
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
    unlisten.push(await listen<LinkView[]>(LINKS, (e) => handlers.links(e.payload)));
    unlisten.push(await listen<number | null>(OPEN_ALERT, (e) => handlers.openAlert(e.payload)));
    unlisten.push(await listen<string>(SELECT_TAB, (e) => handlers.selectTab(e.payload)));
    const snapshot = await invoke<Snapshot>("snapshot");
    return { snapshot, close };
  } catch (error) {
    close();
    throw new Error(errorText(error));
  }
}

/** Tells the app which tab the window shows, so that the window opens on it
 * again after it was closed. Best effort: a failure only loses that. */
export function rememberTab(tab: string): void {
  invoke("window_tab", { tab }).catch(() => undefined);
}

/** Closes the window (Ctrl+W): the app stays in the tray, without it. */
export async function closeWindow(): Promise<void> {
  await getCurrentWindow().close();
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

/** Undoes acknowledgements; resolves with how many changed. */
export function unacknowledge(ids: readonly number[]): Promise<number> {
  return call<number>("inbox_unacknowledge", { ids });
}

/** One alert whole; null once it is gone. */
export function inboxAlert(id: number): Promise<AlertDetail | null> {
  return call<AlertDetail | null>("inbox_alert", { id });
}

/** Writes what `filter` matches (every page) to a new file in the
 * downloads folder. */
export function exportInbox(filter: InboxFilter, format: "csv" | "json"): Promise<ExportView> {
  return call<ExportView>("inbox_export", { filter, format });
}

/** The support report (never a token). */
export function diagnostics(): Promise<string> {
  return call<string>("diagnostics");
}

/** Calls a command; rejects with its error message. */
async function call<T>(command: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(command, args);
  } catch (error) {
    throw new Error(errorText(error));
  }
}

/** Every profile: the stored ones, and the demo and `--url` connections. */
export function listProfiles(): Promise<ProfileView[]> {
  return call("profiles_list");
}

/** Creates or changes a profile (its token into the OS keyring) and
 * (re)connects it. Rejects with a validation message. */
export function saveProfile(input: ProfileInput): Promise<ProfileView> {
  return call("profile_save", { input });
}

export function connectProfile(name: string): Promise<ProfileView> {
  return call("profile_connect", { name });
}

export function disconnectProfile(name: string): Promise<ProfileView> {
  return call("profile_disconnect", { name });
}

/** Disconnects it and removes its file and its token. */
export function deleteProfile(name: string): Promise<void> {
  return call("profile_delete", { name });
}

export function getPrefs(profile: string): Promise<PrefsView> {
  return call("prefs_get", { profile });
}

/** Saves the form; rejects with a message naming the field or rule. */
export function savePrefs(profile: string, form: PrefsForm): Promise<PrefsView> {
  return call("prefs_save", { profile, form });
}

/** Saves the whole file; rejects with `file:line:column: message`. */
export function savePrefsText(profile: string, text: string): Promise<PrefsView> {
  return call("prefs_save_text", { profile, text });
}

/** Snoozes a target for `minutes`, or mutes it until removed (`null`). */
export function snooze(
  profile: string,
  mute: { kind: MuteView["kind"]; value: string },
  minutes: number | null,
): Promise<PrefsView> {
  return call("prefs_snooze", { profile, kind: mute.kind, value: mute.value, minutes });
}

export function unmute(
  profile: string,
  mute: { kind: MuteView["kind"]; value: string },
): Promise<PrefsView> {
  return call("prefs_unmute", { profile, kind: mute.kind, value: mute.value });
}

/** Command errors arrive as their message (a string); anything else is
 * stringified. */
function errorText(error: unknown): string {
  if (typeof error === "string") return error;
  if (error instanceof Error) return error.message;
  return String(error);
}
