import type { Logger, LogLine } from '../lib/log';

/**
 * The Node server's log writer: the same JSON lines as `jsonLogger`, written once per event-loop turn instead of once
 * per line. stdout to a pipe or a file is synchronous on Linux, so a line per `console.log` is a blocking syscall
 * per request: 3% of the proxy's CPU at 32 clients (the bench's profile). Lines still leave in the turn that wrote
 * them, each stream's in order (error lines go to stderr, after that turn's stdout lines); whatever is pending when
 * the process exits is written on the way out.
 */
export function batchedStdoutLogger(
  out: (text: string) => void = whileOpen(process.stdout, (error) =>
    process.stderr.write(
      `ai-chat-proxy: stdout failed (${error.message}): log lines are dropped from now on.\n`,
    ),
  ),
  err: (text: string) => void = whileOpen(process.stderr),
): Logger & { flush(): void } {
  let lines = '';
  let errors = '';
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    if (lines) out(lines);
    if (errors) err(errors);
    lines = '';
    errors = '';
  };
  process.once('exit', flush);
  const log = (line: LogLine) => {
    const text = `${JSON.stringify(line)}\n`;
    if (line.level === 'error') errors += text;
    else lines += text;
    if (scheduled) return;
    scheduled = true;
    setImmediate(flush);
  };
  return Object.assign(log, { flush });
}

/**
 * Writes to a stream for as long as it takes them. A stream that fails (its reader went away: `EPIPE` when the log
 * collector reading our stdout stops) emits an `error` that nothing else listens for, and an unhandled `error` ends
 * the process: every reply in flight cut for the sake of a log line. Once it has failed, its lines are dropped (there
 * is nowhere left to write them), and `onFail` hears why, once.
 */
export function whileOpen(
  stream: NodeJS.WritableStream,
  onFail: (error: Error) => void = () => {},
): (text: string) => void {
  let failed = false;
  stream.on('error', (error: Error) => {
    if (failed) return;
    failed = true;
    onFail(error);
  });
  return (text) => {
    if (!failed) stream.write(text);
  };
}
