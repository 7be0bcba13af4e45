// Follows work running in a worker (a meter data import, a settlement run's calculation):
// polls the JSON at the data-progress-url of the element that carries it, shows its
// "percent" in the <progress data-progress-bar> and its "text" in the
// [data-progress-text] inside that element, and reloads the page once the answer says
// "finished" (or "stale": the worker is gone) so the page shows the outcome. When the
// record was discarded meanwhile ("discarded": its "text" says by whom and when) or is
// gone (404: a run discarded before discarded runs were kept) it shows that, or
// data-progress-gone, and stops.
// The page is complete without this script; it only keeps it current.
(function () {
  "use strict";
  var box = document.querySelector("[data-progress-url]");
  if (!box || box.dataset.finished === "true") { return; }
  var bar = box.querySelector("[data-progress-bar]");
  var text = box.querySelector("[data-progress-text]");
  function poll() {
    fetch(box.dataset.progressUrl, {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(function (response) {
        if (response.status === 404) { return {gone: true}; }
        return response.json();
      })
      .then(function (data) {
        if (data.gone || data.discarded) {
          // Discarded meanwhile (kept on record, or gone): say so and stop polling.
          if (text) {
            text.textContent = (data.discarded && data.text) || box.dataset.progressGone ||
              "This no longer exists.";
          }
          return;
        }
        if (data.finished || data.stale) { window.location.reload(); return; }
        if (bar) { bar.value = data.percent; }
        if (text && data.text) { text.textContent = data.text; }
        window.setTimeout(poll, 1000);
      })
      .catch(function () { window.setTimeout(poll, 3000); });
  }
  window.setTimeout(poll, 1000);
})();
