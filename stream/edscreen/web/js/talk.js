// talk: push-to-talk from the doctor's microphone to the crew. The view offers a
// send-only audio section with its WHEP offer, carrying nothing until the doctor holds
// the button: then the microphone goes onto it and the hub is told this view may
// speak. G.711 µ-law (PCMU) goes first in the codec list, as the box plays it without
// transcoding. Only doctors get the button.
import { el } from "./dom.js";

const stats = { presses: 0, started: 0, failures: 0, lastError: null };

export const talk = {
  id: "talk",

  beforeOffer(ctx) {
    if (!ctx.me.may_talk) return;
    const tr = ctx.pc.addTransceiver("audio", { direction: "sendonly" });
    const caps = (RTCRtpSender.getCapabilities && RTCRtpSender.getCapabilities("audio")) || RTCRtpReceiver.getCapabilities("audio");
    const pcmu = caps.codecs.filter(c => c.mimeType.toLowerCase() === "audio/pcmu");
    if (pcmu.length && tr.setCodecPreferences) {
      try {
        tr.setCodecPreferences(pcmu);
      } catch {
        // Older browsers take only receiver capabilities here; PCMU is among them.
        tr.setCodecPreferences(RTCRtpReceiver.getCapabilities("audio").codecs.filter(c => c.mimeType.toLowerCase() === "audio/pcmu"));
      }
    }
    ctx.talkSender = tr.sender;
  },

  mount(ctx) {
    if (!ctx.me.may_talk || !ctx.talkSender) return;
    const { t } = ctx;
    window.edView.talk = stats;
    let mic = null;
    let holding = false;
    const btn = el("button", { class: "btn talk", id: "talk" }, t("talk.hold"));
    const say = (on, err) => {
      btn.classList.toggle("on", on);
      btn.textContent = err ? t("talk.failed", { e: err }) : on ? t("talk.talking") : t("talk.hold");
    };
    const tell = async session => {
      const res = await fetch(ctx.api + "/talk", {
        method: "POST", credentials: "same-origin",
        headers: { ...ctx.headers, "Content-Type": "application/json" }, body: JSON.stringify({ session }),
      });
      if (!res.ok) throw new Error((await res.text()).trim() || String(res.status));
    };
    const start = async () => {
      if (holding) return;
      holding = true;
      stats.presses++;
      try {
        if (!mic) {
          const stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true } });
          mic = stream.getAudioTracks()[0];
        }
        mic.enabled = true;
        await ctx.talkSender.replaceTrack(mic);
        // The hub lets a view speak once its audio arrives; the first packets take a
        // moment after the track is on.
        let last = null;
        for (let i = 0; i < 20 && holding; i++) {
          try {
            await tell(ctx.session());
            stats.started++;
            say(true);
            return;
          } catch (e) {
            last = e;
            await new Promise(r => setTimeout(r, 150));
          }
        }
        if (last) throw last;
      } catch (e) {
        stats.failures++;
        stats.lastError = String(e.message || e);
        holding = false;
        say(false, e.name === "NotAllowedError" ? t("talk.noMic", { e: e.message }) : e.message);
      }
    };
    const stop = async () => {
      if (!holding) return;
      holding = false;
      say(false);
      if (mic) mic.enabled = false;
      try {
        await tell("");
      } catch {
        // The hub stops talk-back itself when this view leaves.
      }
    };
    btn.addEventListener("pointerdown", e => { e.preventDefault(); start(); });
    for (const ev of ["pointerup", "pointercancel", "pointerleave"]) btn.addEventListener(ev, stop);
    btn.addEventListener("keydown", e => { if (e.key === " " && !e.repeat) start(); });
    btn.addEventListener("keyup", e => { if (e.key === " ") stop(); });
    ctx.onLang(() => say(holding));
    ctx.toolbar.append(btn);
    stats.start = start;
    stats.stop = stop;
  },
};
