// dropout-risk dashboard: small progressive enhancements. Every page works without this file.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Move focus to a message the page opens with (a recorded session, or form errors),
  // so keyboard and screen-reader users land on it.
  const message = document.querySelector("[data-focus]");
  if (message) message.focus();

  // Filter the caseload rows on this page by client id.
  const filter = document.querySelector("[data-filter]");
  const table = document.getElementById("caseload");
  if (filter && table) {
    filter.hidden = false;
    const input = filter.querySelector("input");
    const count = filter.querySelector("[data-filter-count]");
    const rows = Array.from(table.tBodies[0].rows);
    input.addEventListener("input", () => {
      const needle = input.value.trim().toLowerCase();
      let shown = 0;
      for (const row of rows) {
        const match = !needle || row.dataset.client.toLowerCase().includes(needle);
        row.hidden = !match;
        if (match) shown += 1;
      }
      count.textContent = needle ? `${shown} of ${rows.length} shown` : "";
    });
  }

  // One submission per click: the button says it is working until the page comes back.
  for (const form of document.querySelectorAll("form[data-record]")) {
    form.addEventListener("submit", () => {
      const button = form.querySelector("button[type=submit]");
      if (button) {
        button.disabled = true;
        button.textContent = "Recording…";
      }
      form.setAttribute("aria-busy", "true");
    });
  }
});
