// Types for cluster-key-slot, which ships none: the slot-hashing function ioredis itself routes commands with,
// so that the Redis Cluster broker reckons a channel's shard exactly as ioredis sends it there.
declare module "cluster-key-slot" {
  /** The Redis Cluster slot (0 to 16383) of a key, hash tag included. */
  export default function calculateSlot(key: string | Buffer): number;
}
