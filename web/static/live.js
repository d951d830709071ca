// The live feed: GET /api/live as an EventSource. Each event arrives as `event: <type>`, so the page
// listens to every type by name (EVENT_TYPES: every event of docs/events.md; a test checks the list
// against the `Event` union). `lagged` (the server dropped entries for this client) and a reconnect
// (events passed while the connection was down) make the page reload what it shows.

import { api, liveUrl } from "./api.js";

export const EVENT_TYPES = [
  "WorkflowSubmitted", "WorkflowAdmitted", "WorkflowRefused", "WorkflowValidated", "WorkflowInvalid",
  "CancelRequested", "WorkflowCancelled", "WorkflowCompleted", "WorkflowFailed",
  "TaskReady", "TaskStarted", "TaskHeartbeat", "TaskSucceeded", "TaskFailed", "TaskTimedOut",
  "TaskRetryScheduled", "TaskSkipped", "OutcomeChecked", "TaskAssessed",
  "LLMCalled", "CallReserved", "ModelChosen", "FeedbackGiven",
  "MessageRejected", "ChainCheckpoint", "Attested", "AlertRaised", "AlertResolved",
  "InputFlagged", "OutputFlagged", "EdgeFlagged", "ToolRefused", "CancelRefused", "ToolCalled",
];

// Opens the feed and keeps it open. `onEvent(seq, event)` for each event; `onGap()` when some were
// missed (lagged, or reconnected); `onStatus(state)` with connecting | live | offline.
export function follow({ onEvent, onGap, onStatus }) {
  let source = null;
  let connectedBefore = false;
  let retryTimer = null;

  const open = () => {
    onStatus("connecting");
    source = new EventSource(liveUrl());
    source.addEventListener("open", () => {
      onStatus("live");
      if (connectedBefore) onGap("reconnected");
      connectedBefore = true;
    });
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {
        // The server refused the stream (a token it does not take) or is gone: ask the API, which
        // asks for a token if that is it, then open again.
        onStatus("offline");
        source.close();
        clearTimeout(retryTimer);
        retryTimer = setTimeout(async () => {
          try {
            await api("/api/alerts"); // asks for a token if the API wants one
          } catch {
            // still down or still refused: try again later all the same
          }
          open();
        }, 3000);
      } else {
        onStatus("connecting");
      }
    });
    source.addEventListener("lagged", () => onGap("lagged"));
    for (const type of EVENT_TYPES) {
      source.addEventListener(type, (message) => {
        let event;
        try {
          event = JSON.parse(message.data);
        } catch {
          return;
        }
        onEvent(Number(message.lastEventId) || 0, event);
      });
    }
  };
  open();
  return () => {
    clearTimeout(retryTimer);
    if (source) source.close();
  };
}
