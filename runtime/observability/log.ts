/** Log levels, most to least severe. `off` silences everything. */
export const LOG_LEVELS = ["off", "error", "warn", "info", "debug", "trace"] as const;
export type LogLevel = typeof LOG_LEVELS[number];

const RANK: Readonly<Record<LogLevel, number>> = {
  off: 0,
  error: 1,
  warn: 2,
  info: 3,
  debug: 4,
  trace: 5,
};

let globalLevel: LogLevel = "info";
let sink: (line: string) => void = (line) => console.error(line);

/** Sets the process-wide level (from `--log-level` or `DYN_LOG`). */
export function setLogLevel(level: LogLevel): void {
  globalLevel = level;
}

export function getLogLevel(): LogLevel {
  return globalLevel;
}

/** Replaces where log lines go (tests capture them). Returns the previous sink. */
export function setLogSink(next: (line: string) => void): (line: string) => void {
  const prev = sink;
  sink = next;
  return prev;
}

type Fields = Readonly<Record<string, unknown>>;

/** A structured logger for one component: `TIME LEVEL component: message key=value …`. */
export class Logger {
  readonly component: string;

  constructor(component: string) {
    this.component = component;
  }

  error(message: string, fields?: Fields): void {
    this.#log("error", message, fields);
  }
  warn(message: string, fields?: Fields): void {
    this.#log("warn", message, fields);
  }
  info(message: string, fields?: Fields): void {
    this.#log("info", message, fields);
  }
  debug(message: string, fields?: Fields): void {
    this.#log("debug", message, fields);
  }
  trace(message: string, fields?: Fields): void {
    this.#log("trace", message, fields);
  }

  enabled(level: LogLevel): boolean {
    return RANK[level] <= RANK[globalLevel];
  }

  #log(level: LogLevel, message: string, fields?: Fields): void {
    if (!this.enabled(level)) return;
    let line = `${new Date().toISOString()} ${
      level.toUpperCase().padEnd(5)
    } ${this.component}: ${message}`;
    if (fields !== undefined) {
      for (const [key, value] of Object.entries(fields)) {
        if (value === undefined) continue;
        line += ` ${key}=${formatValue(value)}`;
      }
    }
    sink(line);
  }
}

function formatValue(value: unknown): string {
  if (value instanceof Error) return JSON.stringify(value.message);
  if (typeof value === "string") {
    return /^[\w.:/@%+-]+$/.test(value) ? value : JSON.stringify(value);
  }
  if (typeof value === "bigint") return value.toString();
  return JSON.stringify(value) ?? String(value);
}
