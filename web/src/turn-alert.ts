/**
 * Tells a traveller their turn came, even with the tab in the background: a
 * short chime (Web Audio, no file), a vibration where the device has one, a
 * flashing title until the page is looked at, and a system notification when
 * the traveller allowed them (background notifications need HTTPS, and on iOS
 * an installed web app).
 */
let audio: AudioContext | undefined;

/** Called from a click (the join button): browsers let audio start only after a gesture. */
export function unlockSound(): void {
  try {
    audio ??= new AudioContext();
    void audio.resume();
  } catch {
    // no Web Audio: the other signals still come
  }
}

function chime(): void {
  if (!audio) return;
  const start = audio.currentTime;
  for (const [i, frequency] of [880, 1320].entries()) {
    const tone = audio.createOscillator();
    const gain = audio.createGain();
    tone.frequency.value = frequency;
    gain.gain.setValueAtTime(0.2, start + i * 0.18);
    gain.gain.exponentialRampToValueAtTime(0.001, start + i * 0.18 + 0.16);
    tone.connect(gain).connect(audio.destination);
    tone.start(start + i * 0.18);
    tone.stop(start + i * 0.18 + 0.17);
  }
}

let flashing: number | undefined;

function flashTitle(text: string): void {
  if (flashing !== undefined) return;
  const original = document.title;
  let on = false;
  flashing = window.setInterval(() => {
    on = !on;
    document.title = on ? text : original;
  }, 800);
  const stop = (): void => {
    if (document.visibilityState !== "visible") return;
    window.clearInterval(flashing);
    flashing = undefined;
    document.title = original;
    document.removeEventListener("visibilitychange", stop);
  };
  document.addEventListener("visibilitychange", stop);
  // Seen already: a few flashes are enough.
  if (document.visibilityState === "visible") window.setTimeout(stop, 5000);
}

/** Whether to offer the traveller notifications (they have not decided yet). */
export function canAskForNotifications(): boolean {
  return "Notification" in window && Notification.permission === "default";
}

export async function askForNotifications(): Promise<boolean> {
  return "Notification" in window && (await Notification.requestPermission()) === "granted";
}

export function alertTurn(title: string, body: string): void {
  chime();
  navigator.vibrate?.([200, 100, 200]);
  flashTitle(title);
  if ("Notification" in window && Notification.permission === "granted") {
    try {
      new Notification(title, { body, tag: "ticket-queue-turn" });
    } catch {
      // (Android Chrome allows notifications only from a service worker: the other signals came)
    }
  }
}
