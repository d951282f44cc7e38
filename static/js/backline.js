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
