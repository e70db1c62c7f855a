/**
 * Imported first: a script error anywhere shows under the header instead of
 * leaving a blank window (as text).
 */
function show(message: string) {
  const el = document.getElementById("detail");
  if (!el) return;
  el.textContent = `UI error: ${message}`;
  el.hidden = false;
}

window.addEventListener("error", (e) => show(String(e.message)));
window.addEventListener("unhandledrejection", (e) => show(String(e.reason)));
