// The Origin check: with --origin set, pages from other sites can neither subscribe nor publish.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { post, subscribe } from "./support/clients.ts";
import { RawWebSocket } from "./support/raw-websocket.ts";
import { startServer, type TestServer } from "./support/server.ts";

let checked: TestServer;
let open: TestServer;
beforeAll(async () => {
  checked = await startServer({ origin: ["https://app.example.com"] });
  open = await startServer();
});
afterAll(async () => {
  await checked.stop();
  await open.stop();
});

const foreign = ["https://evil.example.com", "http://app.example.com", "https://app.example.com:8443", "null"];

describe("with --origin", () => {
  test("a websocket from the allowed origin, in any spelling of it, subscribes", async () => {
    for (const origin of ["https://app.example.com", "HTTPS://App.Example.com:443"]) {
      const s = await subscribe(checked.ws("/origin"), { headers: { Origin: origin } });
      expect(s.ws.readyState).toBe(WebSocket.OPEN);
      s.close();
    }
  });

  test("a websocket with no Origin header subscribes (servers, curl)", async () => {
    const raw = await RawWebSocket.connect({ port: checked.port }, "/origin");
    expect(raw.status).toBe(101);
    raw.end();
  });

  for (const origin of foreign) {
    test(`a websocket from ${origin} is refused with 403`, async () => {
      const raw = await RawWebSocket.connect({ port: checked.port }, "/origin", { Origin: origin });
      expect(raw.status).toBe(403);
    });

    test(`a POST from ${origin} is refused with 403 and not published`, async () => {
      const s = await subscribe(checked.ws("/origin/post"));
      const refused = await post(checked.http("/origin/post"), "forged", { Origin: origin });
      expect([refused.status, refused.text]).toEqual([403, "forbidden: Origin is not https://app.example.com\n"]);
      const allowed = await post(checked.http("/origin/post"), "real", { Origin: "https://app.example.com" });
      expect(allowed.status).toBe(200);
      expect(await s.received(1)).toEqual(["real"]);
      s.close();
    });
  }

  test("a POST with no Origin header publishes", async () => {
    expect((await post(checked.http("/origin/none"), "from a server")).status).toBe(200);
  });
});

test("without --origin, any Origin is accepted", async () => {
  const s = await subscribe(open.ws("/any"), { headers: { Origin: "https://anywhere.example" } });
  const response = await post(open.http("/any"), "hi", { Origin: "https://elsewhere.example" });
  expect(response.status).toBe(200);
  expect(await s.received(1)).toEqual(["hi"]);
  s.close();
});

describe("several origins and subdomain patterns", () => {
  let several: TestServer;
  beforeAll(async () => {
    several = await startServer({ origin: ["https://example.com", "https://*.example.org"] });
  });
  afterAll(() => several.stop());

  const allowed = [
    "https://example.com",
    "https://www.example.org",
    "https://a.b.example.org",
    "HTTPS://WWW.Example.org",
  ];
  const refused = [
    "https://www.example.com",
    "https://example.org",
    "http://www.example.org",
    "https://www.example.org:8443",
    "https://evilexample.org",
    "https://example.org.evil.example",
  ];

  for (const origin of allowed) {
    test(`${origin} may subscribe and publish`, async () => {
      const raw = await RawWebSocket.connect({ port: several.port }, "/several", { Origin: origin });
      expect(raw.status).toBe(101);
      raw.end();
      expect((await post(several.http("/several"), "x", { Origin: origin })).status).toBe(200);
    });
  }

  for (const origin of refused) {
    test(`${origin} is refused, and told which origins are allowed`, async () => {
      const raw = await RawWebSocket.connect({ port: several.port }, "/several", { Origin: origin });
      expect(raw.status).toBe(403);
      raw.end();
      const response = await post(several.http("/several"), "x", { Origin: origin });
      expect([response.status, response.text]).toEqual([
        403,
        "forbidden: Origin is not https://example.com or https://*.example.org\n",
      ]);
    });
  }
});
