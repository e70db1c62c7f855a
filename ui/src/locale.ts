/**
 * Imported before any library: under LANG=C (headless sessions, minimal
 * systems) WebKit reports `navigator.language` as "C", which is not a BCP 47
 * tag, and libraries that pass it to `Intl` (uPlot does, at load) throw a
 * RangeError. Such a tag is replaced by the runtime's own default locale.
 */
function valid(tag: string): boolean {
  try {
    return Intl.getCanonicalLocales(tag).length > 0;
  } catch {
    return false;
  }
}

if (!valid(navigator.language)) {
  const fallback = new Intl.DateTimeFormat().resolvedOptions().locale || "en-US";
  Object.defineProperty(navigator, "language", { value: fallback, configurable: true });
  Object.defineProperty(navigator, "languages", { value: [fallback], configurable: true });
}

export {};
