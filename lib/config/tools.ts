import * as z from 'zod/mini';
import { invalid } from './env';

/**
 * A client-side tool the operator declares: the model may call it, and the app (useChat's `onToolCall`) runs it and
 * sends the output back. Clients cannot declare their own: a tool is an instruction to the model, like the system
 * prompt, so only the operator chooses them.
 */
export interface ToolDeclaration {
  readonly name: string;
  readonly description?: string | undefined;
  /** A JSON schema of the arguments, passed to the upstream as it is. */
  readonly parameters: Readonly<Record<string, unknown>>;
}

export interface ToolsConfig {
  /** Empty: no tools, and tool parts in the history are dropped as before. */
  readonly declared: readonly ToolDeclaration[];
  /** The declared names, for the history check: only calls to these tools are sent back upstream. */
  readonly names: ReadonlySet<string>;
}

/** OpenAI's own rule for function names. */
export const TOOL_NAME = /^[a-zA-Z0-9_-]{1,64}$/;

const toolsSchema = z.array(
  z.strictObject({
    name: z.string().check(z.regex(TOOL_NAME, 'must be 1 to 64 letters, digits, _ or -')),
    description: z.optional(z.string()),
    parameters: z.record(z.string(), z.unknown()),
  }),
);

export const toolsEnv = z.object({
  /** The tools as JSON; on the Node server `TOOLS_FILE` fills it in (server/config-files.ts). */
  TOOLS: z.optional(z.string()),
  TOOLS_FILE: z.optional(z.string()),
});

const EXAMPLE =
  '[{"name": "get_weather", "description": "…", "parameters": {"type": "object", "properties": {}}}]';

export function toToolsConfig(e: z.output<typeof toolsEnv>): ToolsConfig {
  // The Node server reads the file and hands its content over as TOOLS; only the edge can still see TOOLS_FILE here.
  if (e.TOOLS_FILE !== undefined) {
    throw invalid('TOOLS_FILE', 'is read by the Node server only: on the edge, put the JSON in TOOLS');
  }
  const declared = parseTools(e.TOOLS);
  return { declared, names: new Set(declared.map((t) => t.name)) };
}

function parseTools(json: string | undefined): ToolDeclaration[] {
  if (!json) return [];
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw invalid('TOOLS', `must be a JSON array of tools, e.g. ${EXAMPLE}`);
  }
  const parsed = toolsSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw invalid(
      'TOOLS',
      `${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'is invalid'} (e.g. ${EXAMPLE})`,
    );
  }
  const names = parsed.data.map((t) => t.name);
  const twice = names.find((name, i) => names.indexOf(name) !== i);
  if (twice) throw invalid('TOOLS', `declares "${twice}" twice`);
  return parsed.data;
}
