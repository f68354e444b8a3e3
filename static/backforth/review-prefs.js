// Loaded in <head>, before the review screen is drawn: applies the reviewer's remembered choices (kept in this
// browser's localStorage by review.js) as attributes of <html>, which the CSS reads. Nothing inside the item
// that htmx swaps holds them, so every next item arrives shown the same way.
(function () {
  const root = document.documentElement;
  try {
    root.dataset.diff = localStorage.getItem("backforth.review.diff") === "on" ? "on" : "off";
    root.dataset.textTab = localStorage.getItem("backforth.review.tab") === "web" ? "web" : "response";
  } catch (e) {
    // Storage refused (a privacy setting): the defaults, diff off and the response tab.
    root.dataset.diff = "off";
    root.dataset.textTab = "response";
  }
})();
