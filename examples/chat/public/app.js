// The whole chat client: no build step, no framework. Everything a "chat server" would do
// (who may join which room, relaying messages) is in ../switchboard.toml.
"use strict";

const $ = (id) => document.getElementById(id);
const joined = new Set();

// Same origin as the page: Switchboard serves both.
const socket = io({ transports: ["websocket", "polling"] });

function setStatus(state, text) {
  $("status").dataset.state = state;
  $("status").textContent = text;
}

socket.on("connect", () => {
  setStatus("connected", `connected as ${socket.id}`);
  $("status").dataset.socket = socket.id;
  // After a reconnection the server has forgotten our rooms: join them again.
  for (const room of joined) socket.emit("join", room, () => {});
});
socket.on("disconnect", (reason) => setStatus("disconnected", `disconnected (${reason}), reconnecting…`));
socket.on("connect_error", (err) => setStatus("error", `cannot connect: ${err.message}`));

// A message relayed by Switchboard: ("message", room, {from, text, at}).
socket.on("message", (room, msg) => {
  if (typeof room !== "string" || !msg || typeof msg.text !== "string") return;
  addMessage(room, String(msg.from ?? "?"), msg.text, false);
});

function addMessage(room, from, text, mine) {
  const li = document.createElement("li");
  li.className = mine ? "mine" : "";
  li.dataset.room = room;
  li.dataset.from = from;
  const r = document.createElement("span");
  r.className = "room";
  r.textContent = `[${room}] `;
  const f = document.createElement("span");
  f.className = "from";
  f.textContent = `${from}: `;
  const t = document.createElement("span");
  t.className = "text";
  t.textContent = text; // never innerHTML: messages come from other users
  li.append(r, f, t);
  appendLine(li);
}

function addSystem(text) {
  const li = document.createElement("li");
  li.className = "system";
  li.textContent = text;
  appendLine(li);
}

function appendLine(li) {
  const list = $("messages");
  list.append(li);
  list.scrollTop = list.scrollHeight;
}

function renderRooms() {
  $("joined").textContent = joined.size ? [...joined].join(", ") : "none";
  const to = $("to");
  const current = to.value;
  to.replaceChildren(
    ...[...joined].map((room) => {
      const o = document.createElement("option");
      o.value = o.textContent = room;
      return o;
    }),
  );
  if (joined.has(current)) to.value = current;
}

// join/leave are answered by Switchboard: {ok: true} or {error: "room not allowed"}.
function request(event, room) {
  return new Promise((resolve) => socket.timeout(10000).emit(event, room, (err, res) => resolve(err ? { error: "timed out" } : res)));
}

$("join").addEventListener("click", async () => {
  const room = $("room").value.trim();
  const res = await request("join", room);
  if (res?.ok) {
    joined.add(room);
    renderRooms();
    $("to").value = room;
    addSystem(`joined ${room}`);
  } else {
    addSystem(`cannot join ${room}: ${res?.error}`);
  }
});

$("leave").addEventListener("click", async () => {
  const room = $("room").value.trim();
  const res = await request("leave", room);
  if (res?.ok) {
    joined.delete(room);
    renderRooms();
    addSystem(`left ${room}`);
  } else {
    addSystem(`cannot leave ${room}: ${res?.error}`);
  }
});

$("send").addEventListener("submit", (e) => {
  e.preventDefault();
  const room = $("to").value;
  const text = $("text").value.trim();
  if (!room || !text) return;
  const from = $("name").value.trim() || "guest";
  // Relayed to everyone else in the room; the sender does not get it back, so show it here.
  socket.emit("message", room, { from, text, at: Date.now() }, (res) => {
    if (!res?.ok) addSystem(`not sent to ${room}: ${res?.error}`);
  });
  addMessage(room, from, text, true);
  $("text").value = "";
});

renderRooms();
