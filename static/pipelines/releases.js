// The release page. Refused actions (403 / 409) answer the live fragment with the reason:
// show it in place (a 401 means the session ended: leave the page as it is).
document.addEventListener("htmx:beforeSwap", (e) => {
  if (e.detail.target && e.detail.target.id === "release-live" && [401, 403, 409].includes(e.detail.xhr.status)) {
    e.detail.shouldSwap = e.detail.xhr.status !== 401;
    e.detail.isError = false;
  }
});
