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
  const root = document.documentElement;

  // --- remembered view choices: the diff (off by default) and, on narrow screens, which text tab is shown.
  // They live on <html> (review-prefs.js applied them before the page was drawn) and in localStorage, never in
  // the swapped item, so every next item is shown the same way.
  function remember(key, value) {
    try { localStorage.setItem(key, value); } catch (e) { /* storage refused: the choice lasts this page */ }
  }
  function recall(key) {
    try { return localStorage.getItem(key); } catch (e) { return null; }
  }
  function syncControls() {
    document.querySelectorAll(".diff-toggle").forEach((b) => b.setAttribute("aria-pressed", String(root.dataset.diff === "on")));
    document.querySelectorAll('[role="tab"][data-tab]').forEach((tab) => {
      const on = tab.dataset.tab === (root.dataset.textTab || "response");
      tab.setAttribute("aria-selected", String(on));
      tab.tabIndex = on ? 0 : -1;
    });
    document.querySelectorAll("details[data-remember]").forEach((d) => {
      d.open = recall("backforth.review.open." + d.dataset.remember) === "1";
    });
  }
  function setDiff(on) {
    root.dataset.diff = on ? "on" : "off";
    remember("backforth.review.diff", root.dataset.diff);
    syncControls();
  }
  function setTab(name) {
    root.dataset.textTab = name === "web" ? "web" : "response";
    remember("backforth.review.tab", root.dataset.textTab);
    syncControls();
  }
  document.addEventListener("toggle", (e) => {
    const d = e.target;
    if (d.matches && d.matches("details[data-remember]")) remember("backforth.review.open." + d.dataset.remember, d.open ? "1" : "0");
  }, true);

  // --- the round's guidelines: a panel one key (G) away; it opens by itself the first time this browser meets
  // this version of them (an admin's edit shows them again once).
  const panel = $("guidelines");
  let returnFocus = null;
  function setGuidelines(open) {
    if (!panel) return;
    panel.hidden = !open;
    const button = $("btn-guidelines");
    if (button) button.setAttribute("aria-expanded", String(open));
    if (open) {
      returnFocus = document.activeElement;
      panel.focus();
      if (panel.dataset.version) remember("backforth.guidelines.seen." + panel.dataset.round, panel.dataset.version);
    } else if (returnFocus && document.contains(returnFocus) && returnFocus !== document.body) {
      returnFocus.focus();
    } else if (panel.contains(document.activeElement)) {
      document.activeElement.blur();
    }
  }
  if (panel && panel.dataset.version && recall("backforth.guidelines.seen." + panel.dataset.round) !== panel.dataset.version) {
    setGuidelines(true);
  }

  // "R" arms the reason keys; kept outside the DOM so an item swapped in between keeps the state.
  let rejectArmed = false;
  document.addEventListener("htmx:afterSwap", () => {
    isEditing = false;  // a new item always arrives in view mode
    const reason = $("f-reason");
    if (reason && rejectArmed) reason.classList.add("armed");
    syncControls();
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
    if (on) {
      const tabs = form.querySelector('[role="tablist"]');
      if (tabs && tabs.offsetParent !== null) setTab("response");  // narrow screen: the response's field is there
      $("f-instruction").focus();
    }
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
    if (e.target.closest(".diff-toggle")) setDiff(root.dataset.diff !== "on");
    const tab = e.target.closest('[role="tab"][data-tab]');
    if (tab) setTab(tab.dataset.tab);
    if (e.target.closest("#btn-guidelines")) setGuidelines(panel ? panel.hidden : false);
    if (e.target.closest("#btn-guidelines-close")) setGuidelines(false);
  });
  document.addEventListener("keydown", (e) => {
    const inField = e.target.matches("input, textarea, select") && !e.target.closest("[hidden]");
    if (panel && !panel.hidden && e.key === "Escape") { e.preventDefault(); setGuidelines(false); return; }
    if (editing()) {
      if (e.key === "Escape") { e.preventDefault(); setEditing(false); }
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); submit("btn-save"); }
      return;
    }
    if (e.key === "Escape" && inField) { e.target.blur(); return; }
    if (inField || e.ctrlKey || e.metaKey || e.altKey) return;
    // Tabs (narrow screens): the arrow keys move between them, as in any tab list.
    const tab = e.target.closest && e.target.closest('[role="tab"][data-tab]');
    if (tab && (e.key === "ArrowLeft" || e.key === "ArrowRight")) {
      e.preventDefault();
      setTab(tab.dataset.tab === "web" ? "response" : "web");
      const selected = document.querySelector('[role="tab"][aria-selected="true"]');
      if (selected) selected.focus();
      return;
    }
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
      case "d": e.preventDefault(); setDiff(root.dataset.diff !== "on"); break;
      case "t": e.preventDefault(); setTab(root.dataset.textTab === "web" ? "response" : "web"); break;
      case "g": e.preventDefault(); setGuidelines(panel ? panel.hidden : false); break;
    }
  });
  syncControls();
  // Time on an item is measured on the server (from when it was handed out); nothing to track here.
})();
