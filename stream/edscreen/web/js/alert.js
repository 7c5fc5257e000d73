// alert: the pre-alert sound, a two-tone beep made with WebAudio (no sound file to
// load, nothing from outside the hub). Browsers let a page make sound only after a
// touch or click when their autoplay policy says so: soundBlocked() tells the page to
// show a button for it.

let ctx = null;
export const stats = { beeps: 0 };

function context() {
  if (!ctx) ctx = new AudioContext();
  return ctx;
}

// soundBlocked reports whether the browser holds sound back until a user gesture.
export function soundBlocked() {
  return context().state !== "running";
}

// unlock resumes audio after a user gesture.
export async function unlock() {
  await context().resume();
}

// beep plays the pre-alert: three rising double tones, about 1.5 s, loud enough to be
// heard across a resuscitation room.
export function beep() {
  const c = context();
  if (c.state !== "running") {
    c.resume().catch(() => {});
  }
  const t0 = c.currentTime + 0.05;
  for (let i = 0; i < 3; i++) {
    for (const [j, f] of [[0, 880], [1, 1175]].values()) {
      const start = t0 + i * 0.5 + j * 0.18;
      const o = c.createOscillator();
      const g = c.createGain();
      o.type = "square";
      o.frequency.value = f;
      g.gain.setValueAtTime(0.0001, start);
      g.gain.exponentialRampToValueAtTime(0.3, start + 0.01);
      g.gain.exponentialRampToValueAtTime(0.0001, start + 0.16);
      o.connect(g).connect(c.destination);
      o.start(start);
      o.stop(start + 0.17);
    }
  }
  stats.beeps++;
}
