/**
 * The last lines an engine process printed, kept to explain a failure: a ring of at most
 * `maxLines` lines, each cut to `maxLineChars`, so a chatty or broken engine cannot make its
 * worker hold unbounded output.
 */
export class LineTail {
  readonly maxLines: number;
  readonly maxLineChars: number;
  readonly #lines: string[] = [];
  #next = 0;
  #total = 0;

  constructor(options: { maxLines?: number; maxLineChars?: number } = {}) {
    this.maxLines = Math.max(1, Math.floor(options.maxLines ?? 50));
    this.maxLineChars = Math.max(16, Math.floor(options.maxLineChars ?? 2000));
  }

  /** Lines pushed since the start, including those no longer kept. */
  get total(): number {
    return this.#total;
  }

  push(line: string): void {
    const kept = line.length > this.maxLineChars
      ? `${line.slice(0, this.maxLineChars)}… (${line.length - this.maxLineChars} more chars)`
      : line;
    if (this.#lines.length < this.maxLines) this.#lines.push(kept);
    else this.#lines[this.#next] = kept;
    this.#next = (this.#next + 1) % this.maxLines;
    this.#total++;
  }

  /** The kept lines, oldest first; the last `count` of them if given. */
  lines(count = this.maxLines): string[] {
    const ordered = this.#lines.length < this.maxLines
      ? [...this.#lines]
      : [...this.#lines.slice(this.#next), ...this.#lines.slice(0, this.#next)];
    return count >= ordered.length ? ordered : ordered.slice(ordered.length - count);
  }
}

/**
 * Splits a byte stream into lines (`\n` or `\r\n`), cutting any line longer than
 * `maxLineChars` into pieces so a stream without newlines cannot grow one without bound.
 */
export async function* readLines(
  stream: ReadableStream<Uint8Array>,
  maxLineChars = 16_384,
): AsyncGenerator<string> {
  let partial = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    partial += text;
    let nl: number;
    while ((nl = partial.indexOf("\n")) >= 0) {
      yield partial.slice(0, nl).replace(/\r$/, "");
      partial = partial.slice(nl + 1);
    }
    while (partial.length > maxLineChars) {
      yield partial.slice(0, maxLineChars);
      partial = partial.slice(maxLineChars);
    }
  }
  if (partial !== "") yield partial.replace(/\r$/, "");
}
