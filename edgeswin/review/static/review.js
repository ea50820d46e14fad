// Keyboard and mouse for the review page. Each decision is one POST; the card goes and the
// next one takes the focus. Without this script the buttons still work as plain forms.
"use strict";
(function () {
  const csrf = document.querySelector('meta[name="csrf"]').content;
  let focus = 0;

  function cards() { return Array.from(document.querySelectorAll(".card")); }

  function show(i) {
    const all = cards();
    if (!all.length) return;
    focus = Math.max(0, Math.min(i, all.length - 1));
    all.forEach((card, n) => card.classList.toggle("focus", n === focus));
    all[focus].scrollIntoView({ block: "nearest" });
  }

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    });
    const data = await response.json();
    if (!response.ok) throw new Error(data.error || response.statusText);
    return data;
  }

  async function decide(card, label) {
    if (!card || card.dataset.busy) return;
    card.dataset.busy = "1";
    try {
      const data = await post("/decide", { key: card.dataset.key, label: label });
      for (const [name, n] of Object.entries(data.counts)) {
        const el = document.getElementById(name);
        if (el) el.textContent = n;
      }
      document.getElementById("matrix").innerHTML = data.matrix_html;
      const at = cards().indexOf(card);
      card.remove();
      if (!cards().length) { location.reload(); return; }
      show(at);
    } catch (err) {
      delete card.dataset.busy;
      alert("Not saved: " + err.message);
    }
  }

  async function undo() {
    await post("/undo", {});
    location.reload();
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button");
    if (!button) return;
    if (button.closest("#undo")) { event.preventDefault(); undo(); return; }
    const card = button.closest(".card");
    if (!card) return;
    event.preventDefault();
    decide(card, button.value);
  });

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const card = cards()[focus];
    const labels = card ? Array.from(card.querySelectorAll("button.confirm, button.relabel"))
      .map((b) => b.value) : [];
    const key = event.key;
    if (key === "ArrowRight" || key === "j") show(focus + 1);
    else if (key === "ArrowLeft" || key === "k") show(focus - 1);
    else if ((key === "Enter" || key === "y") && card) decide(card, card.dataset.given);
    else if ((key === "x" || key === "Delete") && card) decide(card, "__discard__");
    else if (key === "u") undo();
    else if (key === "n" && document.getElementById("next")) location = document.getElementById("next").href;
    else if (key === "p" && document.getElementById("prev")) location = document.getElementById("prev").href;
    else if (/^[1-9]$/.test(key) && card) {
      const label = window.reviewLabels[Number(key) - 1];
      if (label !== undefined && labels.includes(label)) decide(card, label);
    } else return;
    event.preventDefault();
  });

  window.reviewLabels = JSON.parse(document.body.dataset.labels || "[]");
  show(0);
})();
