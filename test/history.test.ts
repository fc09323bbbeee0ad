// The single node's history (LocalHistory) on its own: positions, a quiet channel's included, resuming from
// them, the newest N kept messages, and a gap followed by what is still kept.

import { afterEach, describe, expect, test } from "bun:test";
import { type HistorySettings, LocalHistory, parseId, type Resume } from "../src/history.ts";

const histories: LocalHistory[] = [];
afterEach(() => {
  for (const history of histories.splice(0)) history.close();
});

function keep(overrides: Partial<HistorySettings> = {}): LocalHistory {
  const history = new LocalHistory({ size: 3, ttlMs: 60_000, maxBytes: 1 << 20, ...overrides });
  histories.push(history);
  return history;
}

const texts = (resume: Resume) => resume.messages.map((kept) => kept.message);

describe("a quiet channel's position", () => {
  test("names the place before its first message: resuming from it gives every message since", () => {
    const history = keep();
    const { position, messages, gap } = history.latest("/quiet", 0);
    expect(gap).toBeUndefined();
    expect(messages).toEqual([]);
    expect(parseId(position ?? "")?.sequence).toBe(0);
    const a = history.add("/quiet", "a");
    const b = history.add("/quiet", "b");
    // The same history: the messages are numbered on from the position, under its incarnation.
    expect(parseId(a)?.incarnation).toBe(parseId(position ?? "")?.incarnation);
    const back = history.since("/quiet", position ?? "");
    expect(back).toEqual({
      gap: undefined,
      messages: [
        { id: a, message: "a" },
        { id: b, message: "b" },
      ],
      position: b,
    });
  });

  test("is the same for every subscriber while nothing is published", () => {
    const history = keep();
    const first = history.latest("/same", 0).position;
    expect(history.latest("/same", 0).position).toBe(first);
    expect(history.since("/same", first ?? "")).toEqual({ gap: undefined, messages: [], position: first });
  });

  test("with more published since than the history keeps: messages dropped, then those still kept", () => {
    const history = keep({ size: 3 });
    const { position } = history.latest("/busy", 0);
    for (const m of ["1", "2", "3", "4", "5"]) history.add("/busy", m);
    const back = history.since("/busy", position ?? "");
    expect(back.gap).toBe("messages dropped");
    expect(texts(back)).toEqual(["3", "4", "5"]);
    expect(back.position).toBe(back.messages.at(-1)?.id);
  });

  test("lasts the time to live after it was last given, then is unknown", async () => {
    const history = keep({ ttlMs: 30 });
    const { position } = history.latest("/expiring", 0);
    // Waits out the time to live: the expiry is what is tested, no race is hidden.
    await Bun.sleep(60);
    const back = history.since("/expiring", position ?? "");
    expect(back.gap).toBe("unknown id");
    expect(back.messages).toEqual([]);
    // The subscriber rejoins at a new position, of a new history, from which it can resume.
    expect(parseId(back.position ?? "")?.incarnation).not.toBe(parseId(position ?? "")?.incarnation);
    const c = history.add("/expiring", "c");
    expect(texts(history.since("/expiring", back.position ?? ""))).toEqual(["c"]);
    expect(history.since("/expiring", back.position ?? "").position).toBe(c);
  });

  test("an empty history counts against the memory bound, and the oldest go first", () => {
    const history = keep({ maxBytes: 10_000 });
    const first = history.latest("/q/0", 0).position;
    for (let i = 1; i < 1000; i++) history.latest(`/q/${i}`, 0);
    expect(history.bytes).toBeLessThanOrEqual(10_000);
    expect(history.channelCount).toBeLessThan(1000);
    expect(history.channelCount).toBeGreaterThan(0);
    expect(history.since("/q/0", first ?? "").gap).toBe("unknown id");
  });
});

describe("the newest N kept messages", () => {
  test("in order, at most what is kept, with the position of the newest", () => {
    const history = keep({ size: 3 });
    const ids = ["1", "2", "3", "4"].map((m) => history.add("/n", m));
    expect(texts(history.latest("/n", 2))).toEqual(["3", "4"]);
    expect(history.latest("/n", 2).messages.map((k) => k.id)).toEqual(ids.slice(2));
    expect(texts(history.latest("/n", 100))).toEqual(["2", "3", "4"]);
    expect(history.latest("/n", 0)).toEqual({ gap: undefined, messages: [], position: ids[3] });
    expect(history.latest("/n", 2).position).toBe(ids[3]);
  });

  test("of a channel that kept nothing: none, and its position", () => {
    const history = keep();
    const resume = history.latest("/none", 5);
    expect(resume.messages).toEqual([]);
    expect(parseId(resume.position ?? "")?.sequence).toBe(0);
  });
});

describe("resuming from an id", () => {
  test("an unknown id is a gap, and the subscriber rejoins at the channel's position", () => {
    const history = keep();
    const a = history.add("/u", "a");
    const incarnation = parseId(a)?.incarnation;
    for (const id of ["garbage", "1-1", `${incarnation}-9`, `x${incarnation}-1`]) {
      expect(history.since("/u", id)).toEqual({ gap: "unknown id", messages: [], position: a });
    }
  });

  test("the newest id: nothing missed, and the position stays", () => {
    const history = keep();
    const a = history.add("/up", "a");
    expect(history.since("/up", a)).toEqual({ gap: undefined, messages: [], position: a });
  });

  test("an id whose next messages were dropped: the gap, then every message still kept", () => {
    const history = keep({ size: 2 });
    const [first, second] = ["1", "2", "3", "4"].map((m) => history.add("/d", m));
    const dropped = history.since("/d", first ?? "");
    expect(dropped.gap).toBe("messages dropped");
    expect(texts(dropped)).toEqual(["3", "4"]);
    // Right after the dropped ones: no gap.
    const whole = history.since("/d", second ?? "");
    expect(whole.gap).toBeUndefined();
    expect(texts(whole)).toEqual(["3", "4"]);
  });
});
