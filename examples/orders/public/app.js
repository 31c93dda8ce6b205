// The orders page: sign in at the backend (POST /token), connect to Switchboard with the
// token, and show order-status updates as the backend pushes them to user:<you>.
"use strict";

const $ = (id) => document.getElementById(id);
let socket = null;
let token = null;

async function api(path, { method = "GET", body } = {}) {
  const res = await fetch(path, {
    method,
    headers: {
      "content-type": "application/json",
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await res.json().catch(() => null);
  if (!res.ok) throw new Error(data?.error ?? `HTTP ${res.status}`);
  return data;
}

function setStatus(state, text) {
  $("status").dataset.state = state;
  $("status").textContent = text;
}

/** Inserts or updates one order's row. */
function showOrder(order) {
  let row = document.querySelector(`tr[data-id="${CSS.escape(order.id)}"]`);
  if (!row) {
    row = document.createElement("tr");
    row.dataset.id = order.id;
    for (const cls of ["id", "item", "status", "updated"]) {
      const td = document.createElement("td");
      td.className = cls;
      row.append(td);
    }
    $("orders").prepend(row);
  }
  if (Number(row.dataset.updated ?? 0) > order.updated) return; // an older update, late
  row.dataset.updated = order.updated;
  row.dataset.status = order.status;
  row.querySelector(".id").textContent = order.id;
  row.querySelector(".item").textContent = order.item;
  row.querySelector(".status").textContent = order.status;
  row.querySelector(".updated").textContent = new Date(order.updated).toLocaleTimeString();
  row.classList.remove("flash");
  void row.offsetWidth; // restart the animation
  row.classList.add("flash");
}

async function signIn(user) {
  ({ token } = await api("/token", { method: "POST", body: { user } }));
  sessionStorage.setItem("orders-user", user);
  $("me").textContent = user;
  $("login").hidden = true;
  $("shop").hidden = false;

  const { switchboardUrl } = await api("/config.json");
  // auth as a function: every (re)connection presents the current token.
  socket = io(switchboardUrl, { auth: (cb) => cb({ token }) });
  socket.on("connect", async () => {
    setStatus("connected", `live (socket ${socket.id})`);
    $("status").dataset.socket = socket.id;
    // Updates pushed while we were away are not replayed: fetch the current state.
    for (const order of await api("/orders")) showOrder(order);
  });
  socket.on("disconnect", (reason) => setStatus("disconnected", `offline (${reason}), reconnecting…`));
  socket.on("connect_error", async (err) => {
    setStatus("error", `cannot connect: ${err.message}`);
    // Demo login: an expired token is simply renewed; the client then retries by itself.
    if (err.data?.code === "expired") ({ token } = await api("/token", { method: "POST", body: { user } }));
  });
  socket.on("order:status", (order) => showOrder(order));
}

$("login").addEventListener("submit", (e) => {
  e.preventDefault();
  signIn($("user").value.trim()).catch((err) => alert(`sign-in failed: ${err.message}`));
});

$("order").addEventListener("submit", (e) => {
  e.preventDefault();
  api("/orders", { method: "POST", body: { item: $("item").value } })
    .then(showOrder)
    .catch((err) => setStatus("error", `order failed: ${err.message}`));
});

$("logout").addEventListener("click", () => {
  socket?.disconnect();
  socket = null;
  token = null;
  sessionStorage.removeItem("orders-user");
  $("orders").replaceChildren();
  $("shop").hidden = true;
  $("login").hidden = false;
});

const remembered = sessionStorage.getItem("orders-user");
if (remembered) signIn(remembered).catch(() => sessionStorage.removeItem("orders-user"));
