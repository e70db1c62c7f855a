/**
 * Pure helpers behind the Settings tab and the multi-connection header:
 * client-side checks of the profile and preferences forms, snooze durations,
 * the mute list, and the header's summary of the running connections. No
 * DOM, no Tauri, so unit tests call them directly. The Rust side checks
 * everything again; these only catch mistakes before a round trip.
 */
import type { LinkView, MuteView, ProfileInput, ProfileView, Severity } from "./ipc";
import { STYLES } from "./ipc";

export const SEVERITIES: readonly Severity[] = ["info", "warning", "critical", "emergency"];

export function isSeverity(s: unknown): s is Severity {
  return typeof s === "string" && (SEVERITIES as readonly string[]).includes(s);
}

export const MUTE_KINDS: readonly MuteView["kind"][] = ["source", "subject", "type", "channel"];

export function isMuteKind(s: unknown): s is MuteView["kind"] {
  return typeof s === "string" && (MUTE_KINDS as readonly string[]).includes(s);
}

/** Names of the connections that are not stored profiles. */
export const RESERVED_NAMES: readonly string[] = ["demo", "cli"];

// ---------- profile form ----------

/**
 * Why `name` cannot name a profile, or null: 1–64 ASCII letters, digits,
 * `-`, `_` or `.`, not starting with `.`; a new profile may not be called
 * `demo` or `cli` (those name the built-in demo and `--url`).
 */
export function checkProfileName(name: string, isNew: boolean): string | null {
  if (name.length === 0) return "Enter a name.";
  if (name.length > 64) return "The name is longer than 64 characters.";
  if (!/^[A-Za-z0-9._-]+$/.test(name)) return "Use only letters, digits, '-', '_' or '.' in the name.";
  if (name.startsWith(".")) return "The name cannot start with '.'.";
  if (isNew && RESERVED_NAMES.includes(name.toLowerCase())) {
    return `"${name}" is reserved; choose another name.`;
  }
  return null;
}

/** Query keys that carry a credential (the ones the client redacts). */
const SECRET_PARAMS = ["token", "access_token", "auth", "jwt", "api_key", "apikey"];

export const TOKEN_IN_URL =
  "The URL carries credentials: put the token in the Token field; it is kept in the OS keyring.";

/**
 * Why `url` cannot be a profile's server, or null: it must parse, use
 * ws:// or wss://, and carry no credentials (no `user:pass@`, no `token` /
 * `access_token` query parameter).
 */
export function checkUrl(url: string): string | null {
  const text = url.trim();
  if (text === "") return "Enter the server's URL (ws:// or wss://).";
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    return "This is not a valid URL.";
  }
  if (u.protocol !== "ws:" && u.protocol !== "wss:") return "The URL must start with ws:// or wss://.";
  if (u.hostname === "") return "The URL has no host.";
  if (u.username !== "" || u.password !== "") return TOKEN_IN_URL;
  for (const key of u.searchParams.keys()) {
    if (SECRET_PARAMS.includes(key.toLowerCase())) return TOKEN_IN_URL;
  }
  return null;
}

/** Comma-separated channels → a list: trimmed, blanks dropped, duplicates dropped. */
export function parseChannels(text: string): string[] {
  const out: string[] = [];
  for (const part of text.split(",")) {
    const c = part.trim();
    if (c !== "" && !out.includes(c)) out.push(c);
  }
  return out;
}

/** What the profile form holds. */
export interface ProfileFields {
  name: string;
  url: string;
  /** "auto" or one of STYLES. */
  style: string;
  channels: string;
  token: string;
  clearToken: boolean;
}

/**
 * The form → what `saveProfile` takes, or the first problem. `editing` is
 * the profile being changed (null for a new one). An empty token keeps the
 * stored one.
 */
export function profileInput(
  f: ProfileFields,
  editing: string | null,
): { input: ProfileInput } | { error: string } {
  const name = f.name.trim();
  const nameError = editing !== null && name === editing ? null : checkProfileName(name, true);
  if (nameError) return { error: nameError };
  const urlError = checkUrl(f.url);
  if (urlError) return { error: urlError };
  if (f.style !== "auto" && !(STYLES as readonly string[]).includes(f.style)) {
    return { error: `Unknown backend style "${f.style}".` };
  }
  const token = f.token.trim();
  if (/\s/.test(token)) return { error: "The token cannot contain spaces or line breaks." };
  return {
    input: {
      name,
      url: f.url.trim(),
      style: f.style === "auto" ? null : f.style,
      subscribe: parseChannels(f.channels),
      token: token === "" ? null : token,
      clear_token: token === "" && f.clearToken,
    },
  };
}

/** Whether a profile can be edited or deleted (the demo and `--url` cannot). */
export function isEditable(p: ProfileView): boolean {
  return !p.demo && !RESERVED_NAMES.includes(p.name);
}

// ---------- preferences form ----------

/** Whether `s` is a wall-clock time `HH:MM` (00:00–23:59). */
export function isHHMM(s: string): boolean {
  return /^([01]\d|2[0-3]):[0-5]\d$/.test(s);
}

/** Rules textarea → one rule per line; blank lines dropped. */
export function parseRules(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== "");
}

/** The profile whose preferences Settings opens on: the first connected
 * one, else the first with a connection, else the first. */
/** The most days the inbox keeps alerts by Settings (`PrefsForm::MAX_KEEP_DAYS`). */
export const MAX_KEEP_DAYS = 3650;

/** Settings' "keep alerts" as the form sends it: whole days, or null for
 * forever; an error to show otherwise. */
export function parseKeepDays(value: string, forever: boolean): { days: number | null } | { error: string } {
  if (forever) return { days: null };
  const t = value.trim();
  const n = Number(t);
  if (t === "" || !Number.isInteger(n) || n < 1 || n > MAX_KEEP_DAYS) {
    return { error: `Keep alerts: enter whole days from 1 to ${MAX_KEEP_DAYS}, or choose Forever.` };
  }
  return { days: n };
}

export function defaultPrefsProfile(profiles: readonly ProfileView[]): string | null {
  return (
    profiles.find((p) => p.link?.state.state === "connected")?.name ??
    profiles.find((p) => p.link !== null)?.name ??
    profiles[0]?.name ??
    null
  );
}

// ---------- snoozes and mutes ----------

export type SnoozeChoice = "15m" | "1h" | "4h" | "tomorrow" | "forever";

export const SNOOZE_CHOICES: readonly { value: SnoozeChoice; label: string }[] = [
  { value: "15m", label: "15 minutes" },
  { value: "1h", label: "1 hour" },
  { value: "4h", label: "4 hours" },
  { value: "tomorrow", label: "Until tomorrow 08:00" },
  { value: "forever", label: "Until removed" },
];

export function isSnoozeChoice(s: unknown): s is SnoozeChoice {
  return SNOOZE_CHOICES.some((c) => c.value === s);
}

/**
 * Minutes for `snooze()`: a whole number ≥ 1, or null for a mute until
 * removed. "tomorrow" is 08:00 local time on the next calendar day (rounded
 * up to the minute).
 */
export function snoozeMinutes(choice: SnoozeChoice, now: Date): number | null {
  switch (choice) {
    case "15m":
      return 15;
    case "1h":
      return 60;
    case "4h":
      return 240;
    case "forever":
      return null;
    case "tomorrow": {
      const until = new Date(now.getTime());
      until.setDate(until.getDate() + 1);
      until.setHours(8, 0, 0, 0);
      return Math.max(1, Math.ceil((until.getTime() - now.getTime()) / 60000));
    }
  }
}

export interface MuteRow {
  mute: MuteView;
  /** A snooze whose time has passed (the engine ignores it). */
  expired: boolean;
  /** "until 14:30", "until 2026-11-26 08:00", "until removed", "expired 09:15". */
  label: string;
}

function pad(n: number): string {
  return String(n).padStart(2, "0");
}

/** Local `HH:MM`, with the local date in front when not on `now`'s day. */
export function localUntil(until: Date, now: Date): string {
  const hm = `${pad(until.getHours())}:${pad(until.getMinutes())}`;
  const sameDay =
    until.getFullYear() === now.getFullYear() &&
    until.getMonth() === now.getMonth() &&
    until.getDate() === now.getDate();
  return sameDay ? hm : `${until.getFullYear()}-${pad(until.getMonth() + 1)}-${pad(until.getDate())} ${hm}`;
}

/**
 * The mute list as Settings shows it: running snoozes (ending soonest
 * first), then mutes until removed (by kind and value), then expired
 * snoozes (greyed), or none of those when `showExpired` is false.
 */
export function muteRows(mutes: readonly MuteView[], now: Date, showExpired = true): MuteRow[] {
  const t = now.getTime();
  const timed: { mute: MuteView; at: number }[] = [];
  const forever: MuteView[] = [];
  for (const m of mutes) {
    if (m.until === null) {
      forever.push(m);
      continue;
    }
    const at = Date.parse(m.until);
    timed.push({ mute: m, at: Number.isNaN(at) ? 0 : at });
  }
  timed.sort((a, b) => a.at - b.at);
  forever.sort((a, b) => a.kind.localeCompare(b.kind) || a.value.localeCompare(b.value));
  const running = timed.filter((x) => x.at > t);
  const expired = timed.filter((x) => x.at <= t).reverse();
  return [
    ...running.map((x) => ({ mute: x.mute, expired: false, label: `until ${localUntil(new Date(x.at), now)}` })),
    ...forever.map((m) => ({ mute: m, expired: false, label: "until removed" })),
    ...(showExpired
      ? expired.map((x) => ({ mute: x.mute, expired: true, label: `expired ${localUntil(new Date(x.at), now)}` }))
      : []),
  ];
}

/** Key of a mute target (kind and value). */
export function muteKey(m: { kind: string; value: string }): string {
  return `${m.kind}\u0000${m.value}`;
}

// ---------- links: header and the profile list ----------

/** What one connection is called in the header. */
export function linkLabel(l: LinkView): string {
  if (l.demo) return l.profile === "demo" ? "demo" : `${l.profile} (demo)`;
  if (l.profile === "cli" || l.profile === "") return l.source;
  return l.source ? `${l.profile} (${l.source})` : l.profile;
}

/** The header's text for the running connections, e.g.
 * `demo · prod (wss://risk.example/ws)`. */
export function linksSummary(links: readonly LinkView[]): { text: string; demo: boolean } {
  return {
    text: links.map(linkLabel).join(" · "),
    demo: links.some((l) => l.demo),
  };
}

/**
 * The profile list with each profile's connection taken from `links`
 * (matched by profile name), without asking the Rust side again. `stale`
 * is true when a link has no profile in the list, or a listed profile's
 * link went away: then the list should be fetched again.
 */
export function mergeLinks(
  profiles: readonly ProfileView[],
  links: readonly LinkView[],
): { profiles: ProfileView[]; stale: boolean } {
  const byName = new Map(links.map((l) => [l.profile, l]));
  let stale = false;
  const merged = profiles.map((p) => {
    const link = byName.get(p.name) ?? null;
    if ((link === null) !== (p.link === null)) stale = true;
    return { ...p, link };
  });
  const names = new Set(profiles.map((p) => p.name));
  if (links.some((l) => !names.has(l.profile))) stale = true;
  return { profiles: merged, stale };
}
