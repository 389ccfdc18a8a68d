/** Text tables whose column widths come from their content: the first column left-aligned, the others right. */
export function alignedTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const all = [headers, ...rows];
  const widths = headers.map((_, col) => Math.max(...all.map((row) => width(row[col] ?? ''))));
  const line = (row: readonly string[]) =>
    row
      .map((cell, col) => {
        const pad = ' '.repeat((widths[col] ?? 0) - width(cell));
        return col === 0 ? cell + pad : pad + cell;
      })
      .join('  ')
      .trimEnd();
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  return [line(headers), rule, ...rows.map(line)].join('\n');
}

/** A GitHub markdown table. */
export function markdownTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (row: readonly string[]) => `| ${row.join(' | ')} |`;
  const align = headers.map((_, col) => (col === 0 ? '---' : '--:'));
  return [line(headers), line(align), ...rows.map(line)].join('\n');
}

/** Code points, not UTF-16 units: "×", "→" and "✓" each take one column. */
function width(text: string): number {
  return [...text].length;
}
