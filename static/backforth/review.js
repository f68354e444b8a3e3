// Keyboard-first review: every action has a key; the next item swaps in through htmx (no page load).
(function () {
  // 409 (stale edit) and 400 (invalid decision) come back as the item with a message: show them.
  htmx.config.responseHandling = [
    { code: "204", swap: false },
    { code: "[23]..", swap: true },
    { code: "409", swap: true },
    { code: "400", swap: true },
    { code: "[45]..", swap: false, error: true },
  ];
  const $ = (id) => document.getElementById(id);
  const editing = () => { const f = $("decision"); return f && f.classList.contains("editing"); };
  function setEditing(on) {
    const form = $("decision");
    if (!form) return;
    form.classList.toggle("editing", on);
    form.querySelectorAll(".edit-only").forEach((el) => { el.hidden = !on; });
    form.querySelectorAll(".view-only").forEach((el) => { el.hidden = on; });
    if (on) $("f-instruction").focus();
  }
  function submit(buttonId) {
    const form = $("decision"), button = $(buttonId);
    if (form && button) form.requestSubmit(button);
  }
  document.addEventListener("click", (e) => {
    if (e.target.closest("#btn-edit")) setEditing(true);
    if (e.target.closest("#btn-cancel")) setEditing(false);
  });
  document.addEventListener("keydown", (e) => {
    const inField = e.target.matches("input, textarea, select");
    if (editing()) {
      if (e.key === "Escape") { e.preventDefault(); setEditing(false); }
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); submit("btn-save"); }
      return;
    }
    if (e.key === "Escape" && inField) { e.target.blur(); return; }
    if (inField || e.ctrlKey || e.metaKey || e.altKey) return;
    const reason = $("f-reason");
    if (/^[1-7]$/.test(e.key) && reason && reason.dataset.armed === "1") {
      e.preventDefault();
      reason.selectedIndex = Number(e.key);
      if (reason.value === "other") { $("f-reason-text").focus(); return; }
      submit("btn-reject");
      return;
    }
    switch (e.key.toLowerCase()) {
      case "a": e.preventDefault(); submit("btn-accept"); break;
      case "e": e.preventDefault(); setEditing(true); break;
      case "r": e.preventDefault(); if (reason) { reason.dataset.armed = "1"; reason.classList.add("armed"); } break;
      case "s": e.preventDefault(); submit("btn-skip"); break;
      case "u": e.preventDefault(); { const f = $("undo"); if (f) f.requestSubmit(); } break;
    }
  });
  // Time on an item is measured on the server (from when it was handed out); nothing to track here.
})();
