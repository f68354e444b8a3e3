// Behaviour for every page, from a static file: the Content-Security-Policy allows no inline script or
// inline event handler, so what used to be onsubmit/onclick attributes is declared with data- attributes.
(function () {
  // <form data-confirm="Question?">: ask before submitting (htmx forms too: htmx listens to the same event).
  document.addEventListener(
    "submit",
    (event) => {
      const form = event.target.closest("form[data-confirm]");
      if (form && !window.confirm(form.dataset.confirm)) {
        event.preventDefault();
        event.stopImmediatePropagation();
      }
    },
    true,
  );
  // <input type="checkbox" data-select-all="CSS selector">: (un)check every box the selector finds.
  document.addEventListener("change", (event) => {
    const box = event.target.closest("input[data-select-all]");
    if (!box) return;
    document.querySelectorAll(box.dataset.selectAll).forEach((c) => {
      c.checked = box.checked;
    });
  });
})();
