() => {
  // gr.Plot has no click event: forward Plotly clicks on the Sweeps heatmaps, clicks on a sample of
  // the aligned view and the label keys to hidden textboxes the app listens to.
  const send = (id, value) => {
    const box = document.querySelector(`#${id} textarea, #${id} input`);
    if (!box) return;
    box.value = `${value}|${Date.now()}`; // a nonce: clicking the same cell twice is still a change
    box.dispatchEvent(new Event("input", { bubbles: true }));
  };
  const hook = () => {
    document.querySelectorAll("#sweep-heatmaps .js-plotly-plot").forEach((plot) => {
      // Plotly.newPlot replaces plot._ev (and drops its listeners): hook each new one once.
      if (!plot.on || plot.__ftHallu === plot._ev) return;
      plot.__ftHallu = plot._ev;
      plot.on("plotly_click", (event) => {
        const point = event && event.points && event.points[0];
        if (point && point.customdata) send("heat-click", point.customdata);
      });
    });
  };
  new MutationObserver(hook).observe(document.body, { childList: true, subtree: true });
  document.addEventListener("click", (event) => {
    const cell = event.target.closest && event.target.closest("#aligned-samples [data-gen]");
    if (!cell) return;
    document.querySelectorAll("#aligned-samples .picked").forEach((el) => el.classList.remove("picked"));
    cell.classList.add("picked");
    send("picked-sample", cell.dataset.gen);
  });
  const keys = { f: "label-faithful", h: "label-hallucinated", r: "label-refusal", u: "label-unclear" };
  const blindKeys = { f: "blind-faithful", h: "blind-hallucinated", r: "blind-refusal", u: "blind-unclear", s: "blind-skip" };
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest && event.target.closest("input, textarea, select, [contenteditable]")) return;
    // The Blind labels tab, while it shows a sample (offsetParent: the tab is the one on screen).
    const blind = document.querySelector("#blind-item [data-blind]");
    if (blind && blind.offsetParent !== null) {
      const blindButton = blindKeys[event.key] && document.getElementById(blindKeys[event.key]);
      if (blindButton) {
        blindButton.click();
        event.preventDefault();
      }
      return;
    }
    const button = keys[event.key] && document.getElementById(keys[event.key]);
    if (button && document.querySelector("#aligned-samples .picked")) {
      button.click();
      event.preventDefault();
    }
  });
}
