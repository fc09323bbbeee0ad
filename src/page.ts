// The channel page: what a browser gets for a GET without an upgrade. The template lives in public/ and is
// read once; the channel name is the only thing put into it, HTML-escaped so no markup is ever reflected.

import { readFileSync } from "node:fs";

const template = readFileSync(new URL("../public/channel.html", import.meta.url), "utf8");
const PLACEHOLDER = "{{channel}}";

export function channelPage(channel: string): string {
  return template.replaceAll(PLACEHOLDER, Bun.escapeHTML(channel));
}
