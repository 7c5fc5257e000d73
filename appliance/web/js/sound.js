// sound: the chime of a new message. Browsers play sound only after the page was
// touched, so the first tap anywhere (or the "turn on sound" button, shown until then)
// unlocks it; in a moving ambulance the crew would not look at a silent screen.
import { $ } from "./dom.js";

let audio = null;
let played = 0;

// unlock makes the audio context on a touch and resumes it if the browser suspended it.
export function unlock() {
  if (!audio) {
    try {
      audio = new AudioContext();
    } catch {
      return;
    }
    audio.addEventListener("statechange", showButton);
  }
  if (audio.state === "suspended") audio.resume();
  showButton();
}

function showButton() {
  $("sound").hidden = audio !== null && audio.state === "running";
}

// mountSound offers the unlock on every touch of the page and on its own button.
export function mountSound() {
  for (const ev of ["pointerdown", "keydown"]) document.addEventListener(ev, unlock, { capture: true });
  $("sound").addEventListener("click", unlock);
  showButton();
}

// chime plays two tones (three, higher, when urgent) and counts it; it returns false
// when the page has not been touched yet and so cannot play.
export function chime(urgent) {
  if (!audio || audio.state !== "running") return false;
  const start = audio.currentTime;
  const offsets = urgent ? [0, 0.25, 0.5] : [0, 0.25];
  for (const d of offsets) {
    const o = audio.createOscillator();
    const g = audio.createGain();
    o.frequency.value = urgent ? 1200 : 880;
    g.gain.setValueAtTime(0.3, start + d);
    g.gain.exponentialRampToValueAtTime(0.001, start + d + 0.2);
    o.connect(g);
    g.connect(audio.destination);
    o.start(start + d);
    o.stop(start + d + 0.2);
  }
  played++;
  return true;
}

// chimes is how many chimes have played since the page opened.
export function chimes() {
  return played;
}
