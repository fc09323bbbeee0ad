// The HTTP side that is not publishing: the channel page, HEAD, other methods.

import { afterAll, beforeAll, expect, test } from "bun:test";
import { startServer, type TestServer } from "./support/server.ts";

let server: TestServer;
beforeAll(async () => {
  server = await startServer();
});
afterAll(() => server.stop());

test("GET without an upgrade serves the channel page as HTML, naming the channel", async () => {
  const response = await fetch(server.http("/some/caf%C3%A9?x=1"));
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toStartWith("text/html");
  expect(await response.text()).toContain("/some/café");
});

test("markup in the path is HTML-escaped, never reflected", async () => {
  const markup = `/<script>alert(1)</script><img src=x onerror="alert(2)">&'`;
  const response = await fetch(server.http(encodeURI(markup)));
  const page = await response.text();
  expect(response.status).toBe(200);
  expect(page).not.toContain("<script>alert");
  expect(page).not.toContain("<img src=x");
  expect(page).toContain(
    "/&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=&quot;alert(2)&quot;&gt;&amp;&#x27;",
  );
});

test("HEAD behaves as GET without a body", async () => {
  const get = await fetch(server.http("/head"));
  const head = await fetch(server.http("/head"), { method: "HEAD" });
  expect(head.status).toBe(200);
  expect(head.headers.get("content-type")).toBe(get.headers.get("content-type"));
  expect(head.headers.get("content-length")).toBe(String((await get.arrayBuffer()).byteLength));
  expect(await head.text()).toBe("");
});

test("other methods get 405 with an Allow header", async () => {
  for (const method of ["PUT", "DELETE", "PATCH", "OPTIONS", "PROPFIND"]) {
    const response = await fetch(server.http("/method"), { method });
    expect(response.status).toBe(405);
    expect(response.headers.get("allow")).toBe("GET, HEAD, POST");
    expect(await response.text()).toBe("method not allowed: use GET, HEAD, POST\n");
  }
});

test("an upgrade request that is not a valid websocket handshake gets 400", async () => {
  const response = await fetch(server.http("/upgrade"), { headers: { Upgrade: "websocket", Connection: "Upgrade" } });
  expect(response.status).toBe(400);
  expect(await response.text()).toStartWith("bad websocket upgrade");
});

test("every plain-text answer, accepted or refused, has the one Content-Type the README shows", async () => {
  const small = await startServer({ maxMessageSize: 3, origin: ["https://app.example"] });
  try {
    const answers = await Promise.all([
      fetch(small.http("/ct"), { method: "POST", body: "ok" }),
      fetch(small.http("/ct"), { method: "POST", body: "too long" }),
      fetch(small.http("/ct"), { method: "POST", body: "x", headers: { Origin: "https://evil.example" } }),
      fetch(small.http("/ct"), { method: "POST", body: new Uint8Array([0xff]) }),
      fetch(small.http("/ct"), { method: "PUT", body: "x" }),
    ]);
    expect(answers.map((a) => a.status)).toEqual([200, 413, 403, 400, 405]);
    for (const answer of answers) expect(answer.headers.get("content-type")).toBe("text/plain;charset=utf-8");
  } finally {
    await small.stop();
  }
});
