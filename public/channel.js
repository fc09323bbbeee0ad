// The channel page: shows what arrives on the channel of this page's own URL, and sends what is typed. Built on
// pinghub.js; src/page.ts inlines both into the page as one module (this import line is dropped there), so the
// page needs no second request and no path of its own, and works behind any path prefix.
import { connect } from "./pinghub.js";

/** Lines kept on the page; older ones are removed as new ones arrive. */
const MAX_LINES = 500;

/** @param {string} id */
const element = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

const channelName = element("channel").textContent ?? "";
const stateBox = element("state");
const stateText = element("state-text");
// Outside the status live region, so that a screen reader announces the state, not every tick of the countdown.
const countdownText = element("countdown");
const retryButton = /** @type {HTMLButtonElement} */ (element("retry"));
const form = /** @type {HTMLFormElement} */ (element("compose"));
const input = /** @type {HTMLInputElement} */ (element("message"));
const notice = element("notice");
const list = element("messages");
const empty = element("empty");
const count = element("count");
const clearButton = /** @type {HTMLButtonElement} */ (element("clear"));

const pageUrl = new URL(location.href);
pageUrl.hash = "";

let received = 0;
let unseen = 0;
/** @type {ReturnType<typeof setInterval> | undefined} */
let countdown;

const two = (/** @type {number} */ n) => String(n).padStart(2, "0");

/** Words for the close codes a user may meet; the server's own reason is shown when it gives one. */
const CLOSE_WORDS = /** @type {Record<number, string>} */ ({
  1000: "closed normally",
  1001: "server going away",
  1003: "binary message refused",
  1006: "connection lost",
  1007: "message was not UTF-8",
  1008: "refused by policy",
  1009: "message too large",
  1011: "server error",
  1012: "server restarting",
  4000: "no answer to keepalive",
});

/** @param {import("./pinghub.js").PinghubState} state */
function showState(state) {
  clearInterval(countdown);
  countdownText.textContent = "";
  stateBox.dataset.state = state.status;
  retryButton.hidden = state.status !== "reconnecting";
  switch (state.status) {
    case "connecting":
      stateText.textContent = state.attempt === 0 ? "Connecting…" : "Reconnecting…";
      break;
    case "live":
      stateText.textContent = "Live";
      // A "not sent" notice no longer holds: what is in the box goes with the next Enter.
      notice.hidden = true;
      break;
    case "reconnecting": {
      const why = state.wasLive ? `Closed: ${describeClose(state.code, state.reason)}` : "Could not connect";
      stateText.textContent = `${why}. Reconnecting`;
      const tick = () => {
        const seconds = Math.max(1, Math.ceil((state.retryAt - Date.now()) / 1000));
        countdownText.textContent = ` in ${seconds} s`;
      };
      tick();
      countdown = setInterval(tick, 1000);
      break;
    }
    case "closed":
      stateText.textContent = `Closed: ${describeClose(state.code, state.reason)}`;
      break;
  }
}

/** @param {number} code @param {string} reason */
function describeClose(code, reason) {
  return `${reason || CLOSE_WORDS[code] || "closed"} (${code})`;
}

/** @param {string} text */
function showMessage(text) {
  const now = new Date();
  const item = document.createElement("li");
  const time = document.createElement("time");
  time.dateTime = now.toISOString();
  time.title = now.toLocaleString();
  time.textContent = `${two(now.getHours())}:${two(now.getMinutes())}:${two(now.getSeconds())}`;
  const body = document.createElement("span");
  body.className = "text";
  // Text, never markup: whatever a message contains is shown as it is.
  body.textContent = text;
  item.append(time, body);
  // Newest first, so the latest is always in view at the top; older lines fall off the bottom.
  list.prepend(item);
  while (list.childElementCount > MAX_LINES) list.lastElementChild?.remove();
  received++;
  empty.hidden = true;
  clearButton.hidden = false;
  count.textContent = received > MAX_LINES ? `${received} (latest ${MAX_LINES} shown)` : String(received);
  if (document.hidden) {
    unseen++;
    document.title = `(${unseen}) ${channelName} · pinghub`;
  }
}

document.addEventListener("visibilitychange", () => {
  if (document.hidden || unseen === 0) return;
  unseen = 0;
  document.title = `${channelName} · pinghub`;
});

// How to publish from a shell, with this page's own URL, quoted for a POSIX shell.
const shellQuoted = `'${pageUrl.href.replaceAll("'", "'\\''")}'`;
element("curl").textContent = `curl -d 'hello' ${shellQuoted}`;

const channel = connect(pageUrl, { onMessage: showMessage, onState: showState });

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = input.value;
  if (text === "") return;
  if (channel.send(text)) {
    input.value = "";
    notice.hidden = true;
  } else {
    notice.textContent = "Not sent: the channel is not connected. Your message is still in the box.";
    notice.hidden = false;
  }
  input.focus();
});

input.addEventListener("input", () => {
  notice.hidden = true;
});

retryButton.addEventListener("click", () => channel.reconnect());

clearButton.addEventListener("click", () => {
  list.replaceChildren();
  received = 0;
  count.textContent = "";
  empty.hidden = false;
  clearButton.hidden = true;
  input.focus();
});
