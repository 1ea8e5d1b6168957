// CallFort web UI: small progressive enhancements (no framework, no inline script; CSP 'self').
const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
document.documentElement.classList.add("js");
const csrf = document.body.dataset.csrf || "";

// Language switch: submit on change.
for (const sel of $$("select.autosubmit")) {
  sel.addEventListener("change", () => sel.form.requestSubmit());
}

// Idle timeout: after the configured minutes without input, log out (the server enforces it too).
const idleMinutes = Number(document.body.dataset.idleMinutes || 0);
if (idleMinutes > 0 && csrf) {
  let last = Date.now();
  for (const ev of ["keydown", "mousedown", "touchstart", "wheel"]) {
    window.addEventListener(ev, () => { last = Date.now(); }, { passive: true });
  }
  setInterval(async () => {
    if (Date.now() - last > idleMinutes * 60000) {
      const body = new FormData();
      body.set("csrf", csrf);
      try { await fetch("/ui/logout", { method: "POST", body, credentials: "same-origin" }); } catch (e) { /* gone anyway */ }
      window.location.assign("/");
    }
  }, 15000);
}

// Live calls pushed by the server (SSE).
const live = $("#live");
if (live && window.EventSource) {
  const label = (k) => live.getAttribute("data-t-" + k) || k;
  const status = $("#call-status");
  const control = async (callId, action, extra) => {
    const body = new FormData();
    body.set("csrf", csrf);
    if (extra) for (const [k, v] of Object.entries(extra)) body.set(k, v);
    status.textContent = label("working");
    const r = await fetch(`/ui/calls/${encodeURIComponent(callId)}/${action}`, {
      method: "POST", body, credentials: "same-origin", headers: { Accept: "application/json" } });
    const data = await r.json().catch(() => ({}));
    status.textContent = r.ok ? label("done") : (data.error || r.statusText);
  };
  const render = (calls) => {
    live.replaceChildren();
    if (!calls.length) {
      const p = document.createElement("p");
      p.textContent = label("none");
      live.append(p);
      return;
    }
    calls.forEach((c, i) => {
      const box = document.createElement("div");
      box.className = "call";
      box.dataset.call = c.call_id;
      box.dataset.mode = c.mode;
      const p = document.createElement("p");
      const part = (name, value) => {
        const s = document.createElement("strong");
        s.textContent = label(name) + ": ";
        const v = document.createElement("span");
        v.textContent = value;
        v.className = "v-" + name;
        p.append(s, v, " ");
      };
      part("state", label(c.state));
      part("mode", label(c.mode));
      part("customer", c.customer || "–");
      part("since", c.started);
      box.append(p);
      if (c.state === "recording" || c.state === "held") {
        const row = document.createElement("div");
        row.className = "controls";
        if (c.mode !== "both") {
          const cb = document.createElement("input");
          cb.type = "checkbox";
          cb.id = `informed-live-${i}`;
          const lb = document.createElement("label");
          lb.htmlFor = cb.id;
          lb.textContent = label("informed");
          const b = document.createElement("button");
          b.type = "button";
          b.className = "primary record-both";
          b.textContent = label("recordboth");
          b.disabled = true;
          cb.addEventListener("change", () => { b.disabled = !cb.checked; });
          b.addEventListener("click", () => control(c.call_id, "record-both", { informed: "yes" }));
          row.append(cb, lb, b);
        }
        const pr = document.createElement("button");
        pr.type = "button";
        if (c.mode === "paused") {
          pr.textContent = label("resume");
          pr.className = "resume";
          pr.addEventListener("click", () => control(c.call_id, "resume"));
        } else {
          pr.textContent = label("pause");
          pr.className = "pause";
          pr.addEventListener("click", () => control(c.call_id, "pause"));
        }
        row.append(pr);
        box.append(row);
      }
      live.append(box);
    });
  };
  const es = new EventSource(live.dataset.feed);
  es.addEventListener("calls", (ev) => {
    // keep a half-ticked consent box: re-render only when something changed at the PBX
    render(JSON.parse(ev.data));
  });
}

// Player: waveform per channel from the server, seeking by click or keyboard.
const player = $("#player");
if (player) {
  const audio = $("#audio", player);
  const wave = JSON.parse(player.dataset.wave);
  const duration = Number(player.dataset.duration) || 1;
  const canvases = $$("canvas.wave", player);
  const css = getComputedStyle(document.body);
  const colour = (name, dflt) => (css.getPropertyValue(name) || dflt).trim();
  const draw = () => {
    const pos = (audio.currentTime || 0) / duration;
    for (const cv of canvases) {
      const peaks = wave.channels[Number(cv.dataset.channel)].peaks;
      const g = cv.getContext("2d");
      const w = cv.width, h = cv.height, n = peaks.length;
      g.clearRect(0, 0, w, h);
      for (let i = 0; i < n; i++) {
        const x = Math.floor(i * w / n), bw = Math.max(1, Math.floor(w / n) - 1);
        const amp = Math.max(1, peaks[i] * (h - 4));
        g.fillStyle = i / n <= pos ? colour("--played", "#0b5cab") : colour("--unplayed", "#8a99a8");
        g.fillRect(x, (h - amp) / 2, bw, amp);
      }
      cv.setAttribute("aria-valuenow", (audio.currentTime || 0).toFixed(1));
      cv.setAttribute("aria-valuetext", `${Math.floor(audio.currentTime / 60)}:${String(Math.floor(audio.currentTime % 60)).padStart(2, "0")}`);
    }
  };
  const seek = (seconds) => {
    audio.currentTime = Math.max(0, Math.min(duration, seconds));
    draw();
  };
  for (const cv of canvases) {
    cv.addEventListener("click", (ev) => {
      const r = cv.getBoundingClientRect();
      seek((ev.clientX - r.left) / r.width * duration);
    });
    cv.addEventListener("keydown", (ev) => {
      const step = ev.shiftKey ? 15 : 5;
      if (ev.key === "ArrowRight") { seek(audio.currentTime + step); ev.preventDefault(); }
      else if (ev.key === "ArrowLeft") { seek(audio.currentTime - step); ev.preventDefault(); }
      else if (ev.key === "Home") { seek(0); ev.preventDefault(); }
      else if (ev.key === "End") { seek(duration); ev.preventDefault(); }
      else if (ev.key === " " || ev.key === "Enter") { if (audio.paused) audio.play(); else audio.pause(); ev.preventDefault(); }
    });
  }
  audio.addEventListener("timeupdate", draw);
  audio.addEventListener("seeked", draw);
  audio.addEventListener("contextmenu", (ev) => ev.preventDefault());
  draw();
}
