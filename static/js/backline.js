// Small helpers shared by every page. HTMX does the heavy lifting.
document.addEventListener("htmx:configRequest", (e) => {
  const token = document.cookie.split("; ").find((c) => c.startsWith("csrftoken="));
  if (token) e.detail.headers["X-CSRFToken"] = token.split("=")[1];
});
// Buttons with data-confirm ask first (HTMX has hx-confirm; this covers plain forms).
document.addEventListener("submit", (e) => {
  const msg = e.target.getAttribute("data-confirm");
  if (msg && !window.confirm(msg)) e.preventDefault();
});
// No inline script anywhere (the Content-Security-Policy allows only these files):
// <select data-autosubmit> submits its form when changed,
document.addEventListener("change", (e) => {
  if (e.target.matches && e.target.matches("[data-autosubmit]") && e.target.form) e.target.form.submit();
});
// <a data-history-back> goes back when there is a page to go back to (else follows its href),
document.addEventListener("click", (e) => {
  const link = e.target.closest && e.target.closest("a[data-history-back]");
  if (link && window.history.length > 1) {
    e.preventDefault();
    window.history.back();
  }
});
// and a poller with data-live-switch="<checkbox id>" polls only while that box is ticked.
document.addEventListener("htmx:beforeRequest", (e) => {
  const id = e.detail.elt && e.detail.elt.getAttribute && e.detail.elt.getAttribute("data-live-switch");
  const box = id && document.getElementById(id);
  if (id && !(box && box.checked)) e.preventDefault();
});
