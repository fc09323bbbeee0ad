// The shipped systemd unit and logrotate recipe, run for real: the unit passes systemd-analyze, its ExecStart
// serves on the socket with the right mode, logrotate's rotation plus the unit's reload keeps every line, and
// the unit's stop signal ends it cleanly.

import { expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { RawWebSocket } from "./support/raw-websocket.ts";
import { skipWithoutRedis, startRedis } from "./support/redis.ts";
import { inScratch } from "./support/scratch.ts";
import { ROOT, spawnPinghub } from "./support/server.ts";
import { until } from "./support/until.ts";

const unit = readFileSync(join(ROOT, "examples/pinghub.service"), "utf8");
const rotation = readFileSync(join(ROOT, "examples/pinghub.logrotate"), "utf8");

/** The program a test needs, or a loud skip outside CI; in CI a missing program fails. */
function requireProgram(path: string, debianPackage: string): boolean {
  if (existsSync(path)) return true;
  if (process.env.CI === "true") throw new Error(`${path} is missing: apt-get install ${debianPackage}`);
  console.warn(`\n*** SKIPPED: ${path} not found; install Debian package \`${debianPackage}\` to run this test ***\n`);
  return false;
}

const envExample = readFileSync(join(ROOT, "examples", "pinghub.env"), "utf8");

/** The variables as systemd reads them from an EnvironmentFile: NAME=value lines, comments and blank lines ignored. */
function environmentFile(text: string): Record<string, string> {
  return Object.fromEntries(
    text
      .split("\n")
      .filter((line) => line !== "" && !line.startsWith("#"))
      .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]),
  );
}

/** The unit's ExecStart flags with its directories moved under `dir` and no fixed metrics port. */
function unitFlags(dir: string): string[] {
  return setting("ExecStart")
    .split(" ")
    .slice(2)
    .map((a) => a.replace("/run/pinghub", dir).replace("/var/log/pinghub", dir))
    .map((a) => (a === "8082" ? "0" : a));
}

/** Waits until the log file says pinghub started. */
async function started(log: string): Promise<void> {
  for (let i = 0; i < 500 && !(existsSync(log) && readFileSync(log, "utf8").includes("started")); i++) {
    await Bun.sleep(10);
  }
}

/** The unit's setting, e.g. `ExecStart`, as written. */
function setting(name: string): string {
  const line = unit.split("\n").find((l) => l.startsWith(`${name}=`));
  if (line === undefined) throw new Error(`examples/pinghub.service has no ${name}=`);
  return line.slice(name.length + 1);
}

test("systemd-analyze verify accepts the unit", () =>
  inScratch("unit", async (dir) => {
    if (!requireProgram("/usr/bin/systemd-analyze", "systemd")) return;
    const path = join(dir, "pinghub.service");
    writeFileSync(path, unit.replaceAll("/opt/pinghub", ROOT.replace(/\/$/, "")));
    const verify = Bun.spawn(["systemd-analyze", "verify", path], { stderr: "pipe", stdout: "pipe" });
    const problems = await new Response(verify.stderr).text();
    expect(problems).toBe("");
    expect(await verify.exited).toBe(0);
  }));

test("the unit's ExecStart serves on its socket, logrotate and reload keep the log, its stop signal ends it", () =>
  inScratch("deploy", async (dir) => {
    if (!requireProgram("/usr/sbin/logrotate", "logrotate")) return;
    expect(setting("RuntimeDirectory")).toBe("pinghub");
    expect(setting("ExecReload")).toBe("/bin/kill -HUP $MAINPID");
    expect(setting("KillSignal")).toBe("SIGTERM");
    expect(setting("Restart")).toBe("on-failure");

    // systemd would make /run/pinghub and /var/log/pinghub; the test makes them under a temporary directory.
    const place = (path: string) =>
      path.replace("/run/pinghub", join(dir, "run")).replace("/var/log/pinghub", join(dir, "log"));
    mkdirSync(join(dir, "run"));
    mkdirSync(join(dir, "log"));
    const [program, ...args] = setting("ExecStart").split(" ");
    expect(program).toBe("/opt/pinghub/node_modules/.bin/bun");
    expect(args[0]).toBe("src/main.ts");
    const flags = args
      .slice(1)
      .map(place)
      .map((a) => (a === "8082" ? "0" : a)); // no fixed metrics port in tests
    const socket = join(dir, "run", "pinghub.sock");
    const log = join(dir, "log", "pinghub.log");
    expect(flags).toContain(socket);
    expect(flags).toContain(log);

    const pinghub = spawnPinghub(flags);
    await until(() => existsSync(socket), "the socket exists");
    expect(statSync(socket).mode & 0o777).toBe(0o660);
    const response = await fetch("http://localhost/deployed", { method: "POST", body: "hi", unix: socket });
    expect(await response.text()).toBe("OK\n");

    // logrotate, as configured, except that the reload signals this process rather than asking systemd.
    const config = join(dir, "logrotate.conf");
    writeFileSync(
      config,
      rotation
        .replace("/var/log/pinghub/pinghub.log", log)
        .replace(/ *create .*\n/, "") // the pinghub user does not exist here
        .replaceAll("systemctl reload pinghub", `/bin/kill -HUP ${pinghub.proc.pid}`),
    );
    const rotate = Bun.spawn(["logrotate", "--force", "--state", join(dir, "state"), config], { stderr: "pipe" });
    expect(await new Response(rotate.stderr).text()).toBe("");
    expect(await rotate.exited).toBe(0);
    await until(() => existsSync(log) && readFileSync(log, "utf8").includes("reopened"), "the log is reopened");

    pinghub.proc.kill("SIGTERM");
    expect(await pinghub.exited).toBe(0);
    const rotated = readFileSync(`${log}.1`, "utf8");
    const current = readFileSync(log, "utf8");
    expect(rotated).toContain("started");
    expect(rotated).not.toContain("reopened");
    expect(current).toContain("log file reopened");
    expect(current).toContain("pinghub stopped");
    expect(existsSync(socket)).toBe(false);
  }));

test("the single-node recipe as shipped: examples/pinghub.env installed unedited, POSTs reach a websocket", () =>
  inScratch("deploy-single", async (dir) => {
    // Installed as the README's systemd section says, untouched: it must set nothing that needs another
    // program (a PINGHUB_REDIS with no Redis behind it refuses every POST with 503).
    const env = environmentFile(envExample);
    expect(env).toEqual({});
    // systemd gives the unit only the file's variables: none of this shell's PINGHUB_ settings.
    const cleared = Object.fromEntries(
      Object.keys(process.env)
        .filter((name) => name.startsWith("PINGHUB_"))
        .map((name) => [name, ""]),
    );
    const pinghub = spawnPinghub(unitFlags(dir), { ...cleared, ...env });
    try {
      await started(join(dir, "pinghub.log"));
      const socket = join(dir, "pinghub.sock");
      const subscriber = await RawWebSocket.connect({ unix: socket }, "/deployed/single");
      expect(subscriber.status).toBe(101);
      const response = await fetch("http://localhost/deployed/single", { method: "POST", body: "hi", unix: socket });
      expect([response.status, await response.text()]).toEqual([200, "OK\n"]);
      expect(response.headers.get("x-pinghub-subscribers")).toBe("1");
      await subscriber.until(() => subscriber.texts().length === 1);
      expect(subscriber.texts()).toEqual(["hi"]);
      subscriber.destroy();
    } finally {
      pinghub.proc.kill("SIGTERM");
      expect(await pinghub.exited).toBe(0);
    }
  }));

test("cluster mode as deployed: the unit's EnvironmentFile and examples/pinghub.env, uncommented, bring a node onto Redis", () =>
  inScratch("deploy-cluster", async (dir) => {
    if (skipWithoutRedis()) return;
    expect(setting("EnvironmentFile")).toBe("-/etc/pinghub/pinghub.env");
    // The operator's edit for cluster mode: the PINGHUB_REDIS line uncommented, nothing else.
    expect(envExample).toMatch(/^#PINGHUB_REDIS=/m);
    const env = environmentFile(envExample.replace(/^#PINGHUB_REDIS=/m, "PINGHUB_REDIS="));
    expect(Object.keys(env)).toEqual(["PINGHUB_REDIS"]);
    const example = new URL(env.PINGHUB_REDIS ?? "");
    // A real Redis with the example's password, on a port of the test's own.
    const redis = await startRedis(
      undefined,
      ["--requirepass", decodeURIComponent(example.password)],
      example.password,
    );
    try {
      example.port = String(redis.port);
      const pinghub = spawnPinghub(unitFlags(dir), { PINGHUB_REDIS: example.href });
      const log = join(dir, "pinghub.log");
      await started(log);
      const text = readFileSync(log, "utf8");
      expect(text).toContain(`cluster: connected to redis at redis://:***@127.0.0.1:${redis.port}/0`);
      expect(text).not.toContain(example.password);
      const response = await fetch("http://localhost/deployed", {
        method: "POST",
        body: "hi",
        unix: join(dir, "pinghub.sock"),
      });
      expect([response.status, response.headers.get("x-pinghub-nodes")]).toEqual([200, "0"]);
      pinghub.proc.kill("SIGTERM");
      expect(await pinghub.exited).toBe(0);
    } finally {
      await redis.stop();
    }
  }));
