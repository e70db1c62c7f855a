/**
 * The connection store: what the window knows about its connections, as one
 * explicit state instead of loose flags. Pure: no DOM, no Tauri, times are
 * passed in, so every transition is tested in `connection.test.ts`.
 *
 * The worst link state (`state`) drives the header badge; the list of
 * running connections (`links`) drives the source line, the Demo badge and
 * Settings. The list goes through these states, in this order only:
 *
 * - `waiting`: nothing heard yet (before the snapshot and any `links`
 *   event);
 * - `label`: the snapshot came from a backend that sends no list: only its
 *   source label and demo flag are known;
 * - `listed`: the list is known, from the snapshot or from a `links` event;
 *   `live` once an event sent it, so an older snapshot never overwrites it.
 */
import type { LinkState, LinkView, Snapshot } from "./ipc";
import { badge } from "./model";
import { linkLabel, linksSummary } from "./settings";

export type Links =
  | { kind: "waiting" }
  | { kind: "label"; source: string; demo: boolean }
  | { kind: "listed"; links: LinkView[]; at: number; live: boolean };

/** What the header shows about the connections. */
export interface SourceLine {
  text: string;
  /** Each connection and its state, one a line (the tooltip). */
  title: string;
  demo: boolean;
}

export class Connections {
  /** The worst link state, and when it arrived (for its countdown). */
  state: LinkState = { state: "connecting" };
  stateAt: number;
  links: Links = { kind: "waiting" };

  constructor(now: number) {
    this.stateAt = now;
  }

  /**
   * A new worst state. Returns whether the link came up or went down, the
   * change a person is told about.
   */
  setState(next: LinkState, now: number): boolean {
    const was = this.state.state;
    this.state = next;
    this.stateAt = now;
    return was !== next.state && (next.state === "connected" || was === "connected");
  }

  /** The list as a `links` event sent it: always the newest. */
  onLinks(next: readonly LinkView[], now: number): void {
    this.links = { kind: "listed", links: [...next], at: now, live: true };
  }

  /**
   * The snapshot's view of the connections. Its list counts only if no
   * `links` event came first; a backend that sends no list leaves its
   * label. Returns whether the list changed.
   */
  onSnapshot(snapshot: Pick<Snapshot, "source" | "demo" | "links">, now: number): boolean {
    if (this.links.kind === "listed" && this.links.live) return false;
    if (Array.isArray(snapshot.links)) {
      this.links = { kind: "listed", links: [...snapshot.links], at: now, live: false };
      return true;
    }
    this.links = { kind: "label", source: snapshot.source, demo: snapshot.demo };
    return false;
  }

  /** The running connections (none until the list is known). */
  list(): readonly LinkView[] {
    return this.links.kind === "listed" ? this.links.links : [];
  }

  /** Whether something shown changes with time: a countdown or elapsed time. */
  ticking(): boolean {
    return this.state.state !== "connected" || this.list().some((l) => l.state.state !== "connected");
  }

  /** The header's badge text, tone and detail line. The detail names the
   * connection behind the worst state when there are several. */
  header(now: number): { text: string; tone: string; detail: string | null } {
    const b = badge(this.state, now - this.stateAt);
    const list = this.list();
    const who = list.length > 1 ? list.find((l) => l.state.state === this.state.state) : undefined;
    const detail = b.detail === null ? null : who ? `${who.profile}: ${b.detail}` : b.detail;
    return { text: b.text, tone: b.tone, detail };
  }

  /** The source line, its tooltip and the Demo badge. */
  source(now: number): SourceLine {
    switch (this.links.kind) {
      case "waiting":
        return { text: "", title: "", demo: false };
      case "label":
        return { text: this.links.source, title: this.links.source, demo: this.links.demo };
      case "listed": {
        const { links, at } = this.links;
        const summary = linksSummary(links);
        return {
          text: links.length ? summary.text : "No connection",
          title: links.map((l) => `${linkLabel(l)}: ${badge(l.state, now - at).text}`).join("\n"),
          demo: summary.demo,
        };
      }
    }
  }
}
