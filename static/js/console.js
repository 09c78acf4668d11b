// Rampart console: small progressive enhancements. Every feature here has a
// plain HTML fallback (forms, links); nothing is inline, as the
// Content-Security-Policy allows scripts from 'self' only.
(function () {
  "use strict";

  function csrfToken() {
    var m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.getAttribute("content") : "";
  }

  // Zone selector and other selects that submit their form on change; a
  // file input that loads its file into a textarea (IP sets: the form
  // posts text, never a multipart upload).
  document.addEventListener("change", function (ev) {
    var el = ev.target;
    if (el.matches && el.matches("input[type=file][data-load-into]") && el.files && el.files[0]) {
      var into = document.getElementById(el.getAttribute("data-load-into"));
      el.files[0].text().then(function (text) { if (into) into.value = text; });
      return;
    }
    if (el.matches && el.matches("select[data-autosubmit]") && el.form) {
      el.form.requestSubmit();
    }
  });

  // Confirmation for plain (non-htmx) forms that destroy something.
  document.addEventListener("submit", function (ev) {
    var f = ev.target;
    var msg = f.getAttribute && f.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) {
      ev.preventDefault();
      ev.stopImmediatePropagation();
    }
  }, true);

  document.addEventListener("click", function (ev) {
    // Rule presets fill the add-rule form.
    var p = ev.target.closest && ev.target.closest("button[data-preset]");
    if (p) {
      var form = document.getElementById(p.getAttribute("data-form") || "add-rule");
      if (!form) return;
      var set = function (name, value) {
        var el = form.elements.namedItem(name);
        if (el && value !== null) el.value = value;
      };
      set("direction", p.getAttribute("data-direction"));
      set("action", p.getAttribute("data-action"));
      set("protocol", p.getAttribute("data-protocol"));
      set("ip_range", p.getAttribute("data-ip-range"));
      set("dest_port_from", p.getAttribute("data-from"));
      set("dest_port_to", p.getAttribute("data-to"));
      set("description", p.getAttribute("data-description"));
      var first = form.elements.namedItem("ip_range");
      if (first) first.focus();
      return;
    }
    // Copy buttons copy the text of their target.
    var b = ev.target.closest && ev.target.closest("button[data-copy]");
    if (b) {
      var t = document.getElementById(b.getAttribute("data-copy"));
      if (!t || !navigator.clipboard) return;
      navigator.clipboard.writeText(t.textContent.trim()).then(function () {
        var label = b.textContent;
        b.textContent = "Copied";
        setTimeout(function () { b.textContent = label; }, 1500);
      });
    }
  });

  // The packet tester's answer names the rule that decided (the server
  // marks its row when it renders the whole page); after an htmx answer,
  // the row in the Rules section is marked here, and the mark of an
  // earlier answer removed.
  document.addEventListener("htmx:afterSettle", function (ev) {
    var tester = document.getElementById("tester");
    var rules = document.getElementById("rules");
    if (!rules || !tester || !(ev.target === tester || tester.contains(ev.target))) return;
    var answer = document.getElementById("tester-answer");
    rules.querySelectorAll("tr.decides").forEach(function (r) { r.classList.remove("decides"); });
    var id = answer && answer.getAttribute("data-decided-rule");
    var row = id && document.getElementById("rule-" + id);
    if (row && rules.contains(row)) row.classList.add("decides");
  });
  // Live counters: the Rules section polls its group's counters into a
  // hidden element (#counters-live), one <data> per counter; they are
  // copied here into the cells that name the counter, so that a row being
  // edited (whose cells are a form) is left alone.
  document.addEventListener("htmx:afterSwap", function (ev) {
    var live = ev.target;
    if (!live || live.id !== "counters-live") return;
    var rules = document.getElementById("rules");
    if (!rules) return;
    live.querySelectorAll("data[data-tag]").forEach(function (d) {
      var tag = d.getAttribute("data-tag");
      rules.querySelectorAll("[data-counter]").forEach(function (cell) {
        if (cell.getAttribute("data-counter") !== tag) return;
        switch (cell.getAttribute("data-field")) {
          case "packets":
            cell.textContent = d.getAttribute("data-packets");
            cell.setAttribute("title", d.getAttribute("data-packets-title"));
            break;
          case "bytes":
            cell.textContent = d.getAttribute("data-bytes");
            break;
          case "last":
            cell.textContent = d.getAttribute("data-last");
            cell.setAttribute("title", d.getAttribute("data-last-title"));
            break;
        }
      });
    });
  });

  // Countdowns of changes awaiting confirmation: the server renders the
  // seconds left (no clock skew between server and browser); each second
  // the text follows. The server rolls back by itself: this is display.
  var ends = new WeakMap();
  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-remaining]").forEach(function (el) {
      if (!ends.has(el)) ends.set(el, now + 1000 * parseInt(el.getAttribute("data-remaining"), 10));
      var left = Math.ceil((ends.get(el) - now) / 1000);
      el.textContent = left > 0 ? left + " s" : "a moment (rolling back)";
    });
  }
  tick();
  setInterval(tick, 1000);

  // Drag-and-drop reordering of rules within one table. The keyboard path
  // is the move up/down buttons; dropping posts the target's position.
  var dragged = null;
  document.addEventListener("dragstart", function (ev) {
    var row = ev.target.closest && ev.target.closest("tr[data-move-url]");
    if (!row) return;
    dragged = row;
    row.classList.add("dragging");
    ev.dataTransfer.effectAllowed = "move";
    ev.dataTransfer.setData("text/plain", row.getAttribute("data-rule"));
  });
  document.addEventListener("dragend", function () {
    if (dragged) dragged.classList.remove("dragging");
    document.querySelectorAll("tr.drop-target").forEach(function (r) { r.classList.remove("drop-target"); });
    dragged = null;
  });
  function targetRow(ev) {
    var row = ev.target.closest && ev.target.closest("tr[data-move-url]");
    if (!row || !dragged || row === dragged || row.parentNode !== dragged.parentNode) return null;
    return row;
  }
  document.addEventListener("dragover", function (ev) {
    var row = targetRow(ev);
    if (!row) return;
    ev.preventDefault();
    ev.dataTransfer.dropEffect = "move";
    document.querySelectorAll("tr.drop-target").forEach(function (r) { if (r !== row) r.classList.remove("drop-target"); });
    row.classList.add("drop-target");
  });
  document.addEventListener("drop", function (ev) {
    var row = targetRow(ev);
    if (!row) return;
    ev.preventDefault();
    // htmx is on every page that has rule rows (the layout loads it).
    htmx.ajax("POST", dragged.getAttribute("data-move-url"), {
      target: "#rules", swap: "outerHTML",
      values: { position: row.getAttribute("data-position") },
      headers: { "X-CSRF-Token": csrfToken() }
    });
  });
})();
