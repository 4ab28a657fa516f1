/**
 * How history is shared between publishers and the public.
 *
 * Publishers (`POST /publish`, with the key or from this machine, and the demos, which publish
 * through the hub directly) are trusted; the chat (`POST /messages`) is anyone at all. If both
 * drew on one pool of channels and bytes, anyone could flood the chat with new channel names
 * or long messages until the publishers' history was pushed out, and their reconnecting
 * clients got `reset`. So the public gets a share of its own, a quarter of each limit, and the
 * publishers keep the rest: what the public publishes pushes out what the public published (but
 * see below for channels both write to).
 *
 * What is whose: an event is paid for by whoever wrote it (`PublishInput.public`). A channel
 * belongs to the public until a publisher writes to it, and to the publishers from then on, so
 * the public cannot push out a channel a publisher uses by writing to it first.
 *
 * What the public can still reach: the channels it writes to. The chat may post on any channel,
 * a publisher's too, and each channel keeps its last HISTORY_SIZE events whoever wrote them;
 * and when one of its messages there is evicted, the channel's older events go with it (a
 * replay from before them would need the evicted one, so keeping them would only make a gap).
 */

/** The public's part of each limit. */
const PUBLIC_SHARE = 1 / 4;

/** Splits a limit (channels, bytes) into the publishers' part and the public's; each gets at least 1. */
export function shareOut(limit: number): { publishers: number; public: number } {
  const publicPart = Math.max(1, Math.floor(limit * PUBLIC_SHARE));
  return { publishers: Math.max(1, limit - publicPart), public: publicPart };
}
