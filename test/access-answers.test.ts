// Where a request's token is found: the Authorization header first, then the `token` query parameter and no
// other, decoded only when it was encoded.

import { expect, test } from "bun:test";
import { bearerToken } from "../src/access-answers.ts";

const at = (url: string, headers: Record<string, string> = {}) => bearerToken(new Request(url, { headers }));

test("the header wins; then ?token= at the start or after &, never inside another name", () => {
  expect(at("http://h/a?token=q", { Authorization: "Bearer h.e.ader" })).toBe("h.e.ader");
  expect(at("http://h/a?token=q", { Authorization: "bearer   lower" })).toBe("lower");
  expect(at("http://h/a?token=q", { Authorization: "Basic dXNlcjpwdw==" })).toBe("q");
  expect(at("http://h/a?token=a.b.c")).toBe("a.b.c");
  expect(at("http://h/a?lastEventId=5&token=a.b.c&x=1")).toBe("a.b.c");
  expect(at("http://h/a?xtoken=no&token=yes")).toBe("yes");
  expect(at("http://h/a?xtoken=no")).toBeUndefined();
  expect(at("http://h/a?token=")).toBeUndefined();
  expect(at("http://h/a")).toBeUndefined();
  expect(at("http://h/token=a")).toBeUndefined();
  expect(at("http://h/a?token=a%2Eb")).toBe("a.b");
  expect(at("http://h/a?token=%zz")).toBe("%zz");
});
