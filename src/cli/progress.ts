/**
 * Progress of one file on stderr: a bar redrawn in place when stderr is a
 * terminal; otherwise (a log, a pipe) nothing until the file is done, then one
 * line. Standard output stays for the command's JSON answer.
 */

export function isTerminal(stream: NodeJS.WritableStream): boolean {
  return (stream as NodeJS.WriteStream).isTTY === true;
}

const MiB = 1024 * 1024;

export function bytes(n: number): string {
  if (n >= MiB) return `${(n / MiB).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

export class Progress {
  readonly #stream: NodeJS.WritableStream;
  readonly #tty: boolean;
  readonly #name: string;
  readonly #total: number;
  #first: number | undefined;
  #drawn = -1;

  constructor(stream: NodeJS.WritableStream, name: string, total: number) {
    this.#stream = stream;
    this.#tty = isTerminal(stream);
    this.#name = name;
    this.#total = total;
  }

  /** Where this run started: above 0 when it resumed earlier work. */
  get startedAt(): number {
    return this.#first ?? 0;
  }

  update(done: number): void {
    this.#first ??= done;
    if (!this.#tty) return;
    const permille = this.#total === 0 ? 1000 : Math.min(1000, Math.floor((done * 1000) / this.#total));
    if (permille === this.#drawn) return;
    this.#drawn = permille;
    const columns = (this.#stream as NodeJS.WriteStream).columns || 80;
    const name = this.#name.length > 28 ? `${this.#name.slice(0, 27)}…` : this.#name;
    const numbers = `${(permille / 10).toFixed(1).padStart(5)}%  ${bytes(done)}/${bytes(this.#total)}`;
    const width = Math.max(10, Math.min(40, columns - name.length - numbers.length - 8));
    const filled = Math.round((permille / 1000) * width);
    this.#stream.write(`\r\x1b[K${name} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${numbers}`);
  }

  /** Ends the bar (terminal) and prints the file's one line. */
  finish(line: string): Promise<void> {
    const text = `${this.#tty && this.#drawn >= 0 ? '\r\x1b[K' : ''}bxchange: ${line}\n`;
    return new Promise((resolve) => this.#stream.write(text, () => resolve()));
  }

  /** Leaves the bar's line before an error message is printed below it. */
  abandon(): void {
    if (this.#tty && this.#drawn >= 0) this.#stream.write('\n');
  }
}
