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
  // "R" arms the reason keys; kept outside the DOM so an item swapped in between keeps the state.
  let rejectArmed = false;
  document.addEventListener("htmx:afterSwap", () => {
    isEditing = false;  // a new item always arrives in view mode
    const reason = $("f-reason");
    if (reason && rejectArmed) reason.classList.add("armed");
    // htmx re-focuses the element with the old focused id; if that is a hidden field, keys would be lost.
    const active = document.activeElement;
    if (active && active !== document.body && (active.hidden || active.closest("[hidden]"))) active.blur();
  });
  // State lives in JS, not in classes: htmx's settle step restores `class` on elements swapped in with the
  // same id, so a key pressed within the settle delay would lose a class-based state.
  htmx.config.defaultSettleDelay = 0;
  let isEditing = false;
  const editing = () => isEditing && !!$("decision");
  function setEditing(on) {
    const form = $("decision");
    isEditing = on && !!form;
    if (!form) return;
    form.querySelectorAll(".edit-only").forEach((el) => { el.hidden = !on; });
    form.querySelectorAll(".view-only").forEach((el) => { el.hidden = on; });
    if (on) $("f-instruction").focus();
  }
  function submit(buttonId) {
    // A real click, so htmx sends the button's name/value (the action) like a mouse click would.
    // A key can come right after a swap, before htmx has processed the new form: process it first, so the
    // form is never submitted natively (a page load).
    const button = $(buttonId);
    if (!button) return;
    if (button.form) htmx.process(button.form);
    button.click();
  }
  document.addEventListener("click", (e) => {
    if (e.target.closest("#btn-edit")) setEditing(true);
    if (e.target.closest("#btn-cancel")) setEditing(false);
  });
  document.addEventListener("keydown", (e) => {
    const inField = e.target.matches("input, textarea, select") && !e.target.closest("[hidden]");
    if (editing()) {
      if (e.key === "Escape") { e.preventDefault(); setEditing(false); }
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); submit("btn-save"); }
      return;
    }
    if (e.key === "Escape" && inField) { e.target.blur(); return; }
    if (inField || e.ctrlKey || e.metaKey || e.altKey) return;
    const reason = $("f-reason");
    if (/^[1-7]$/.test(e.key) && reason && rejectArmed) {
      e.preventDefault();
      rejectArmed = false;
      reason.selectedIndex = Number(e.key);
      if (reason.value === "other") { $("f-reason-text").focus(); return; }
      submit("btn-reject");
      return;
    }
    switch (e.key.toLowerCase()) {
      case "a": e.preventDefault(); submit("btn-accept"); break;
      case "e": e.preventDefault(); setEditing(true); break;
      case "r": e.preventDefault(); rejectArmed = true; if (reason) reason.classList.add("armed"); break;
      case "s": e.preventDefault(); submit("btn-skip"); break;
      case "u": e.preventDefault(); submit("btn-undo"); break;
    }
  });
  // Time on an item is measured on the server (from when it was handed out); nothing to track here.
})();
