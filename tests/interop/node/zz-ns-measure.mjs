import { startSwitchboard } from "../lib/switchboard.mjs";
const N = Number(process.env.N ?? 20000);
const recovery = process.env.RECOVERY !== "0";
const server = await startSwitchboard({ config: `${recovery ? "[recovery]\nenabled = true\n" : ""}
[[namespaces]]
pattern = "/open-*"
` });
const base = `${server.url}/socket.io/?EIO=4&transport=polling`;
async function open() {
  const t = await (await fetch(base)).text();
  return `${base}&sid=${JSON.parse(t.slice(1)).sid}`;
}
async function collect(url, n) {
  let got = 0;
  while (got < n) {
    const text = await (await fetch(url)).text();
    for (const p of text.split("\x1e")) {
      if (p === "2") await fetch(url, { method: "POST", body: "3" });
      else if (/^4[04]\/open-/.test(p)) got++;
    }
  }
}
const rss0 = server.rssBytes();
const m0 = await server.metrics();
let k = 0;
await Promise.all(Array.from({ length: 4 }, async () => {
  const url = await open();
  for (let done = 0; done < N / 4; done += 50) {
    const names = Array.from({ length: 50 }, () => `/open-${k++}-${Math.random().toString(36).slice(2)}`);
    await fetch(url, { method: "POST", body: names.map((n) => `40${n},`).join("\x1e") });
    await collect(url, 50);
    await fetch(url, { method: "POST", body: names.map((n) => `41${n},`).join("\x1e") });
  }
}));
await new Promise((r) => setTimeout(r, 1000));
const m1 = await server.metrics();
const rss1 = server.rssBytes();
console.log(`recovery ${recovery}: ${N} namespaces churned; switchboard_namespaces ${m0.get("switchboard_namespaces")} -> ${m1.get("switchboard_namespaces")}; RSS ${(rss0/1048576).toFixed(1)} -> ${(rss1/1048576).toFixed(1)} MiB; ${((rss1-rss0)/N).toFixed(0)} bytes per namespace`);
await server.stop();
