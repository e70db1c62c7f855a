/**
 * Small DOM helpers for in-place updates. Text is only ever set with
 * textContent: server text stays text.
 */

export function byId<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  return el as T;
}

/** An element with a class and, optionally, text (as text, never markup). */
export function node<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className: string,
  text?: string,
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

/** Sets text only when it changed (no layout work otherwise). */
export function setText(el: Element, text: string): void {
  if (el.textContent !== text) el.textContent = text;
}

export function setClass(el: Element, className: string): void {
  if (el.className !== className) el.className = className;
}

/**
 * Keeps `parent`'s children in `items` order, one element per key: new
 * keys get `create`, every item gets `update`, gone keys are removed.
 */
export function syncList<T, E extends HTMLElement>(
  parent: HTMLElement,
  cache: Map<string, E>,
  items: readonly T[],
  key: (item: T) => string,
  create: (item: T) => E,
  update: (el: E, item: T) => void,
): void {
  const keep = new Set(items.map(key));
  for (const [k, el] of cache) {
    if (!keep.has(k)) {
      el.remove();
      cache.delete(k);
    }
  }
  let cursor: ChildNode | null = parent.firstChild;
  for (const item of items) {
    const k = key(item);
    let el = cache.get(k);
    if (!el) {
      el = create(item);
      cache.set(k, el);
    }
    update(el, item);
    if (el === cursor) cursor = cursor.nextSibling;
    else parent.insertBefore(el, cursor);
  }
}

/** A table row with `n` empty cells. */
export function row(n: number, numeric: readonly number[] = []): HTMLTableRowElement {
  const tr = document.createElement("tr");
  for (let i = 0; i < n; i++) tr.append(node("td", numeric.includes(i) ? "num" : ""));
  return tr;
}

export function cell(tr: HTMLTableRowElement, i: number): HTMLTableCellElement {
  return tr.cells[i]!;
}

export function fixed(n: number | null, digits = 1): string {
  return n === null ? "–" : n.toFixed(digits);
}
