// main: the box's status page, what the ambulance crew sees on the box's touch screen.
// Each part reads its own API on its own rhythm, so that one slow or missing API (no
// GNSS receiver, a box not enrolled) never holds up the others, and redraws from what
// it last read when the crew switches language.
//
// The page is at "/", its scripts and styles under "/static/".
import { $, getJSON } from "./dom.js";
import { apply, onLang, toggleButton } from "./i18n.js";
import { mountSound, chimes } from "./sound.js";
import { showMessages, render as renderMessages } from "./hospital.js";
import { showCard, mountCard } from "./card.js";
import { showECGs, mountECG, render as renderECGs } from "./ecg.js";
import { showVitals, render as renderVitals } from "./vitals.js";
import { refreshStatus, renderStatus, refreshDeadLetters, renderDeadLetters } from "./health.js";
import { refreshPosition, renderPosition, refreshDispatchTexts, renderDispatchTexts } from "./dispatch.js";

// refreshCrew reads the conversation with the hospital: messages, the patient card and
// the 12-lead acquisitions come in one answer.
async function refreshCrew() {
  let crew;
  try {
    crew = await getJSON("/api/v1/crew");
  } catch {
    return; // the banner reports an unreachable box
  }
  if (!crew) return;
  showMessages(crew.messages, crew.streaming);
  showCard(crew.card);
  showECGs(crew.ecgs);
}

async function refreshVitals() {
  try {
    const list = await getJSON("/api/v1/vitals");
    if (list) showVitals(list);
  } catch {
    // the banner reports an unreachable box
  }
}

// every runs fn now and then every ms, never two at once: a slow box is not asked
// again before it answered. A failure is logged and the next round still comes, so one
// bad answer never leaves a part of the screen frozen.
function every(ms, fn) {
  const run = async () => {
    try {
      await fn();
    } catch (e) {
      console.error(e);
    } finally {
      setTimeout(run, ms);
    }
  };
  run();
}

apply(document);
toggleButton($("lang"));
mountSound();
mountCard();
mountECG(refreshCrew);
onLang(() => {
  renderStatus();
  renderMessages();
  renderECGs();
  renderVitals();
  renderDeadLetters();
  renderPosition();
  renderDispatchTexts();
});

every(2000, refreshStatus);
every(1000, refreshCrew);
every(1000, refreshVitals);
every(5000, refreshDeadLetters);
every(1000, refreshPosition);
every(2000, refreshDispatchTexts);

// statusPage lets a support engineer's console (and the browser tests) ask what the
// page did that cannot be seen: how many chimes it played.
window.statusPage = {
  get chimes() {
    return chimes();
  },
};
