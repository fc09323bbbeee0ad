// The one kind of error a bad setting raises: its message is the whole line printed before exit 2.

/** A value that cannot be used; its message is the whole line printed before exit 2. */
export class ConfigError extends Error {}
