/**
 * A token count without a tokenizer, for the edge (a real BPE vocabulary is megabytes and takes ~400 ms to load).
 * It follows how OpenAI's o200k_base tokenizer cuts text before it applies its vocabulary: a word, a run of up to
 * three digits, a run of punctuation and a run of line breaks each become their own pieces, a single space joins
 * the piece after it, and camelCase splits where a capital follows a small letter. Each piece is then priced by its
 * length and script, with rates calibrated against `gpt-tokenizer` on English prose, chat, Markdown, code, JSON,
 * numbers, European languages, Cyrillic, CJK and emoji (tests/support/token-samples.ts). On those samples it stays
 * within the bound that tests/history.test.ts checks and the README states.
 */
export function estimateTokens(text: string): number {
  let tokens = 0;
  let i = 0;
  while (i < text.length) {
    const code = text.charCodeAt(i);
    const run = RUNS[classOf(code)];
    const end = run.scan(text, i);
    tokens += run.cost(text, i, end);
    i = end;
  }
  return Math.ceil(tokens);
}

const LETTER = 0;
const DIGIT = 1;
const SPACE = 2;
const PUNCT = 3;
const WIDE = 4;

type CharClass = typeof LETTER | typeof DIGIT | typeof SPACE | typeof PUNCT | typeof WIDE;

interface Run {
  /** The index just past the run that starts at `start`. */
  scan(text: string, start: number): number;
  /** Its tokens, fractional: the sum is rounded up once. */
  cost(text: string, start: number, end: number): number;
}

/** Scripts written with spaces between words (Latin, Greek, Cyrillic, Hebrew, Arabic...) count as letters. */
function classOf(code: number): CharClass {
  if (code < 0x80) {
    if ((code | 0x20) >= 0x61 && (code | 0x20) <= 0x7a) return LETTER;
    if (code >= 0x30 && code <= 0x39) return DIGIT;
    if (code === 0x20 || code === 0x09 || code === 0x0a || code === 0x0d) return SPACE;
    return PUNCT;
  }
  if (code >= 0xc0 && code < 0x2000 && code !== 0xd7 && code !== 0xf7) return LETTER;
  return WIDE;
}

const isLetter = (code: number) => classOf(code) === LETTER;
const isUpper = (code: number) => code >= 0x41 && code <= 0x5a;
const isLower = (code: number) => code >= 0x61 && code <= 0x7a;

function scanWhile(text: string, start: number, kind: CharClass): number {
  let end = start + 1;
  while (end < text.length && classOf(text.charCodeAt(end)) === kind) end++;
  return end;
}

/**
 * A word: one piece per camelCase segment. Short ASCII words are almost always one token; longer ones and words in
 * capitals split more often. Letters outside ASCII cost extra: accented letters are rarer merges, and Cyrillic,
 * Greek or Arabic words take about one token per four or five letters.
 */
const word: Run = {
  scan: (text, start) => scanWhile(text, start, LETTER),
  cost(text, start, end) {
    let tokens = 0;
    let segment = start;
    for (let i = start + 1; i <= end; i++) {
      const split = i === end || (isUpper(text.charCodeAt(i)) && isLower(text.charCodeAt(i - 1)));
      if (!split) continue;
      tokens += segmentCost(text, segment, i);
      segment = i;
    }
    return tokens;
  },
};

function segmentCost(text: string, start: number, end: number): number {
  let ascii = 0;
  let capitals = 0;
  let other = 0;
  for (let i = start; i < end; i++) {
    const code = text.charCodeAt(i);
    if (code >= 0x80) other += code < 0x250 ? 0.6 : 0.2;
    else {
      ascii++;
      if (isUpper(code)) capitals++;
    }
  }
  const shouting = capitals > 1 && capitals === ascii;
  const asciiCost = ascii === 0 ? 0.4 : 1 + Math.max(0, ascii - (shouting ? 3 : 6)) / (shouting ? 3 : 5);
  return Math.max(1, asciiCost + other);
}

/** Digits go in pieces of up to three. */
const digits: Run = {
  scan: (text, start) => scanWhile(text, start, DIGIT),
  cost: (_text, start, end) => Math.ceil((end - start) / 3),
};

/**
 * Spaces and line breaks: a single space joins the next piece, a run of line breaks (with what indents them) is one
 * piece, and so is a run of spaces.
 */
const spaces: Run = {
  scan: (text, start) => scanWhile(text, start, SPACE),
  cost(text, start, end) {
    const atEnd = end === text.length;
    let lastBreak = -1;
    for (let i = start; i < end; i++) {
      const code = text.charCodeAt(i);
      if (code === 0x0a || code === 0x0d) lastBreak = i;
    }
    const trailing = end - Math.max(lastBreak + 1, start);
    // The last space joins a word or punctuation after it, but not a number.
    const joins = !atEnd && classOf(text.charCodeAt(end)) !== DIGIT;
    const indent = trailing > (joins ? 1 : 0) ? 1 : 0;
    return (lastBreak >= 0 ? 1 : 0) + indent;
  },
};

/**
 * ASCII punctuation: short runs (`);`, `":"`, `},{`) are usually one token, longer ones about one per two
 * characters. The line breaks right after it join it.
 */
const punctuation: Run = {
  scan(text, start) {
    let end = scanWhile(text, start, PUNCT);
    while (end < text.length && (text.charCodeAt(end) === 0x0a || text.charCodeAt(end) === 0x0d)) end++;
    return end;
  },
  cost(text, start, end) {
    let length = 0;
    for (let i = start; i < end; i++) if (classOf(text.charCodeAt(i)) === PUNCT) length++;
    // The last character before a word joins it (`.items`, `(self`, `"name`): often a merge, sometimes a token.
    const beforeWord = end < text.length && isLetter(text.charCodeAt(end));
    const rest = beforeWord ? length - 1 : length;
    return (rest > 0 ? 1 + Math.max(0, rest - 3) / 2 : 0) + (beforeWord ? 0.3 : 0);
  },
};

/**
 * Everything else, character by character: CJK (about three tokens for four characters), Hangul (about one per
 * syllable pair), full-width punctuation, symbols, and emoji (a surrogate pair: two tokens or so; the joiners and
 * variation selectors that glue emoji sequences together add half a token each).
 */
const wide: Run = {
  scan(text, start) {
    let end = start + 1;
    while (end < text.length && classOf(text.charCodeAt(end)) === WIDE) end++;
    return end;
  },
  cost(text, start, end) {
    let tokens = 0;
    for (let i = start; i < end; i++) tokens += wideCost(text.charCodeAt(i));
    return tokens;
  },
};

function wideCost(code: number): number {
  if (code >= 0xd800 && code < 0xdc00) return 2; // the high half of an emoji (or another astral character)
  if (code >= 0xdc00 && code < 0xe000) return 0; // its low half
  if (code === 0x200d || (code >= 0xfe00 && code <= 0xfe0f)) return 1;
  if (code >= 0xac00 && code <= 0xd7af) return 0.68; // Hangul syllables
  if (code >= 0x3000 && code <= 0x9fff) return 0.75; // CJK punctuation, kana, Han
  if (code >= 0xff00 && code <= 0xffef) return 0.75; // full-width forms
  return 1;
}

const RUNS: Readonly<Record<CharClass, Run>> = {
  [LETTER]: word,
  [DIGIT]: digits,
  [SPACE]: spaces,
  [PUNCT]: punctuation,
  [WIDE]: wide,
};
