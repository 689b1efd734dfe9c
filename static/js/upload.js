// Upload with a progress bar. The browser streams the file; the server writes it
// to disk in chunks and checks it in the background.
(function () {
  "use strict";
  function human(bytes) {
    const units = ["bytes", "KB", "MB", "GB"];
    let i = 0;
    while (bytes >= 1024 && i < units.length - 1) { bytes /= 1024; i++; }
    return (i ? bytes.toFixed(1) : bytes) + " " + units[i];
  }
  document.querySelectorAll("#upload-form").forEach((form) => {
    const status = form.querySelector("#upload-status");
    const bar = form.querySelector(".upload-bar");
    const fill = form.querySelector("#upload-fill");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const file = form.querySelector('input[type="file"]').files[0];
      if (!file) { status.textContent = "Choose a file first."; return; }
      const max = Number(form.dataset.maxBytes);
      if (max && file.size > max) {
        status.textContent = "This file is " + human(file.size) + ", more than the " + human(max) +
          " limit of this site. Split it into smaller files, or ask your administrator to raise the limit.";
        status.className = "error";
        return;
      }
      const xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.setRequestHeader("X-Requested-With", "XMLHttpRequest");
      xhr.setRequestHeader("X-CSRFToken", form.querySelector("[name=csrfmiddlewaretoken]").value);
      bar.hidden = false;
      const started = Date.now();
      xhr.upload.onprogress = (e) => {
        if (!e.lengthComputable) return;
        const fraction = e.loaded / e.total;
        fill.style.width = Math.round(fraction * 100) + "%";
        const elapsed = (Date.now() - started) / 1000;
        const eta = fraction > 0 ? elapsed * (1 - fraction) / fraction : 0;
        status.textContent = "Uploading " + human(e.loaded) + " of " + human(e.total) +
          (elapsed > 2 && fraction < 1 ? " · about " + Math.ceil(eta) + " s left" : "");
      };
      xhr.upload.onload = () => { status.textContent = "Uploaded. Storing the file…"; };
      xhr.onload = () => {
        let data = {};
        try { data = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
        if (xhr.status < 300 && data.redirect) { window.location.href = data.redirect; return; }
        status.className = "error";
        status.textContent = (data.error && data.error.message) || ("Upload failed (HTTP " + xhr.status + "). Try again.");
      };
      xhr.onerror = () => { status.className = "error"; status.textContent = "The connection broke during the upload. Try again."; };
      xhr.send(new FormData(form));
    });
  });
})();
